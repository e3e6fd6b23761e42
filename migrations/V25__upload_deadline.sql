-- A worker that has finished its share and is uploading says until when it
-- may take: an hour's run leaves millions of write outcomes to copy, far past
-- the fixed allowance a share gets after the run's end. The coordinator
-- judges such a share by this deadline (and by silence), not by that allowance.
ALTER TABLE control.run_workers ADD COLUMN upload_deadline timestamptz;
