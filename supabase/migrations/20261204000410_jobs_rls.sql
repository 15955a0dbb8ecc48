-- The job queue's tables are the service's alone: RLS on with no policies, like every other
-- private table (API roles read nothing even if granted by mistake).
alter table private.pgqueuer enable row level security;
alter table private.pgqueuer_log enable row level security;
alter table private.pgqueuer_schedules enable row level security;
alter table private.pgqueuer_statistics enable row level security;
