//! The OpenAPI document, generated from the handlers' annotations. The
//! refusals every route shares (no token, a body that is not JSON or too slow
//! or too big, a bad field, a database that is away) are added here, once, by
//! what an operation has — security, a body, query parameters — so the
//! document names every status the server answers without each handler
//! repeating them.

use super::{actions, admin, insights, log, missions, service, traffic, REQUEST_DEADLINE};
use crate::backend::error::ErrorBody;
use crate::backend::extract::{BODY_LIMIT, BODY_READ_TIMEOUT};
use axum::Json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Grace backend", description = "The system under test: errors become agentic actions, \
        proven in Postgres. Errors are {\"error\": {\"code\", \"message\", \"field\"?}}."),
    paths(
        service::health, service::metrics, service::whoami,
        missions::create, missions::get, missions::contracts,
        actions::report_error, actions::contract, actions::approvals, actions::decide,
        traffic::chat, traffic::submit_task, traffic::task, traffic::change_task,
        insights::summary, insights::stats, insights::contracts, insights::snapshots, insights::benchmarks,
        log::entries, log::verify, log::stream, log::ping,
        admin::set, admin::list, admin::clear,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth, &SharedRefusals, &ClosedVariants),
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Request enums whose variants take no other field (serde's
/// `deny_unknown_fields`). utoipa closes a struct's object
/// (`additionalProperties: false`) but not an enum variant's, so a variant
/// object with extra keys would read as valid.
const CLOSED_ENUMS: &[&str] = &["FaultKind"];

struct ClosedVariants;

impl Modify for ClosedVariants {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        for name in CLOSED_ENUMS {
            if let Some(RefOr::T(schema)) = components.schemas.get_mut(*name) {
                close_objects(schema);
            }
        }
    }
}

/// Every inline object in `schema`, however deep, takes no other property.
fn close_objects(schema: &mut Schema) {
    match schema {
        Schema::Object(object) if object.schema_type == SchemaType::Type(Type::Object) => {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            for property in object.properties.values_mut() {
                if let RefOr::T(inner) = property {
                    close_objects(inner);
                }
            }
        }
        Schema::OneOf(one_of) => {
            for item in &mut one_of.items {
                if let RefOr::T(inner) = item {
                    close_objects(inner);
                }
            }
        }
        _ => {}
    }
}

/// A refusal shared by many routes: its status, its name in
/// `components/responses`, and what it means (written from the limits
/// themselves, so the document cannot drift from them).
struct Refusal {
    status: &'static str,
    name: &'static str,
    description: fn() -> String,
}

const UNAVAILABLE: Refusal = Refusal {
    status: "503",
    name: "Unavailable",
    description: || {
        format!(
            "The database is unavailable or did not answer within {} s, the server holds its maximum of \
             connections, or a fault was injected (header x-grace-fault); retry after Retry-After.",
            REQUEST_DEADLINE.as_secs()
        )
    },
};
const UNAUTHORIZED: Refusal = Refusal {
    status: "401",
    name: "Unauthorized",
    description: || "No bearer token, or one the server does not know.".into(),
};
const INVALID_QUERY: Refusal = Refusal {
    status: "422",
    name: "InvalidField",
    description: || "A field or query parameter is invalid; `error.field` names it.".into(),
};
const BODY_REFUSALS: [Refusal; 4] = [
    Refusal { status: "400", name: "MalformedJson", description: || "The body is not well-formed JSON.".into() },
    Refusal {
        status: "408",
        name: "BodyTimeout",
        description: || format!("The body did not arrive within {} s.", BODY_READ_TIMEOUT.as_secs()),
    },
    Refusal {
        status: "413",
        name: "PayloadTooLarge",
        description: || format!("The body is larger than {} KiB.", BODY_LIMIT / 1024),
    },
    Refusal {
        status: "415",
        name: "UnsupportedMediaType",
        description: || "The body's Content-Type is not JSON.".into(),
    },
];

struct SharedRefusals;

impl Modify for SharedRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut used: Vec<&Refusal> = Vec::new();
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                for refusal in refusals_of(operation) {
                    operation
                        .responses
                        .responses
                        .entry(refusal.status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(refusal.name)));
                    if !used.iter().any(|u| u.name == refusal.name) {
                        used.push(refusal);
                    }
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for refusal in used {
            let body = ContentBuilder::new().schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody")))).build();
            let response =
                ResponseBuilder::new().description((refusal.description)()).content("application/json", body);
            components.responses.insert(refusal.name.to_string(), RefOr::T(response.build()));
        }
    }
}

/// What an operation can be refused for, by what it has.
fn refusals_of(operation: &Operation) -> Vec<&'static Refusal> {
    let mut refusals = vec![&UNAVAILABLE];
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        refusals.push(&UNAUTHORIZED);
    }
    let has_query = operation.parameters.iter().flatten().any(|p| matches!(p.parameter_in, ParameterIn::Query));
    if operation.request_body.is_some() {
        refusals.extend(BODY_REFUSALS.iter());
        refusals.push(&INVALID_QUERY);
    } else if has_query {
        refusals.push(&INVALID_QUERY);
    }
    refusals
}
