-- fleet's default --jobs: 64 tenants in flight, fewer when the descriptor
-- limit allows fewer than 4 transfers a tenant (issue 18, point 7).
local t = ...
local fleet = require "calm.ops.fleet"
local task = require "calm.task"
local T = {}

function T.default_jobs_is_a_quarter_of_the_transfers_up_to_64()
  t.eq(fleet.DEFAULT_JOBS, 64)
  t.eq(fleet.default_jobs(65536), 64)
  t.eq(fleet.default_jobs(256), 64, "4 transfers for each of 64 tenants")
  t.eq(fleet.default_jobs(255), 63)
  t.eq(fleet.default_jobs(96), 24, "a soft limit of 256: (256 - 64) / 2 transfers")
  t.eq(fleet.default_jobs(7), 1)
  t.eq(fleet.default_jobs(1), 1, "never 0")
end

function T.default_jobs_reads_the_cap_of_this_process()
  local _, cap = task.limit()
  t.eq(fleet.default_jobs(), fleet.default_jobs(cap))
end

return T
