-- calm.btp.cf: Cloud Foundry v3 client for the legacy "with Cloud Foundry" path.
--
--   local cf = require "calm.btp.cf"
--   local login = assert(cf.login_from_env(opts))     -- CF_USERNAME/CF_PASSWORD or CF_PASSCODE
--   local c = cf.connect{api = "https://api.cf...", login = login, cacert =}
--   local plan = c:find_plan(space)                  -- SAPCloudALMAPIs / standard, visible in the space
--   local inst = c:find_instance(space, plan.guid, "name")
--   local key  = c:find_key(inst.guid, "key-name")
--   local creds = c:key_details(key.guid)
--
-- Root document (GET /) gives the login/uaa links; the token is a password
-- grant with client "cf" and an empty secret (what `cf login` does). Lists
-- follow pagination.next.href; mutations answer 202 + Location of a job,
-- polled until COMPLETE/FAILED. Expected failures: nil, message, code.
local json = require "calm.lib.json"
local log = require "calm.log"
local http = require "calm.http"
local url = require "calm.url"
local oauth = require "calm.net.oauth"
-- the client base and its wait loop
local client, poll = require "calm.btp.client", require "calm.lib.poll"

local M = {}

-- The offering's technical name (the catalog name SAP documents; no other
-- name is guessed).
M.OFFERING_NAMES = { "SAPCloudALMAPIs" }
M.PLAN = "standard"
M.poll_policy = poll.policy

-- One line from {"errors":[{code,title,detail}]}.
function M.errors_text(errs)
  if type(errs) ~= "table" then return nil end
  local parts = {}
  for _, e in ipairs(errs) do
    if type(e) == "table" then
      parts[#parts + 1] = tostring(e.title or e.code or "error") .. (e.detail and (": " .. e.detail) or "")
    end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, "; ")
end

-- a comma separates alternatives (OR) in CF filters: a list value of a query
-- (calm.url.query) keeps literal commas between its items
local C = client.class { api = "Cloud Foundry",
  error_text = function(j) return j and (M.errors_text(j.errors) or j.error_description or j.description) end }

function M.response_text(resp)
  return C.response_text(C, resp)
end

local code_for = client.code_for

-- Discovers the token endpoint from the API root (GET / needs no token).
local function root_links(api, cacert)
  local root, why = url.join(api, "")
  if not root then return nil, "Cloud Foundry API " .. api .. " " .. why, "USAGE" end
  local resp, msg, code = http.request { url = root, method = "GET",
    headers = { Accept = "application/json" }, cacert = cacert }
  if not resp then return nil, "Cloud Foundry API " .. api .. ": " .. tostring(msg), code end
  if resp.status ~= 200 then
    return nil, "Cloud Foundry API " .. api .. ": " .. M.response_text(resp), code_for(resp.status)
  end
  local j, jmsg = json.decode(resp.body, "the Cloud Foundry API root")
  if type(j) ~= "table" or type(j.links) ~= "table" then
    return nil, jmsg or ("Cloud Foundry API " .. api .. ": the root document has no links"), "BAD_RESPONSE"
  end
  local function href(name)
    local l = j.links[name]
    return type(l) == "table" and type(l.href) == "string" and l.href or nil
  end
  return { login = href("login"), uaa = href("uaa"), v3 = href("cloud_controller_v3") }
end

local function env(name)
  local ok, v = pcall(function() return os.getenv(name) end)
  if ok and v ~= "" then return v end
  return nil
end

-- The login, as `cf login` does it, from the environment only (secrets never
-- come from argv): CF_USERNAME + CF_PASSWORD, or CF_PASSCODE (a one-time
-- code from <login>/passcode, as `cf login --sso`); origin: opts["cf-origin"]
-- or CF_ORIGIN (a custom identity provider, sent as login_hint).
-- Returns {username=, password=, passcode=, origin=} | nil, msg, "USAGE".
function M.login_from_env(opts)
  local l = { username = env("CF_USERNAME"), password = env("CF_PASSWORD"), passcode = env("CF_PASSCODE"),
    origin = (opts and opts["cf-origin"]) or env("CF_ORIGIN") }
  if l.passcode then
    l.username, l.password = nil, nil
  elseif not l.username or not l.password then
    return nil, "--runtime cf needs CF_USERNAME and CF_PASSWORD in the environment (or CF_PASSCODE, a "
      .. "one-time passcode from the login server's /passcode page, as cf login --sso)", "USAGE"
  end
  if l.origin and not l.origin:match("^[%w][%w%.%-_]*$") then
    return nil, "--cf-origin / CF_ORIGIN must be an identity provider's origin key (letters, digits, . - _)", "USAGE"
  end
  return l
end

-- opts: {api, login = {username, password | passcode, origin?}, cacert}
-- (opts.username/opts.password still work).
function M.connect(opts)
  if type(opts.api) ~= "string" or opts.api == "" then
    return nil, "--runtime cf needs --cf-api URL", "USAGE"
  end
  local login = opts.login or { username = opts.username, password = opts.password, origin = opts.origin }
  if not login.passcode and (not login.username or login.username == ""
      or not login.password or login.password == "") then
    return nil, "--runtime cf needs CF_USERNAME and CF_PASSWORD in the environment", "USAGE"
  end
  if login.password then log.secret(login.password) end
  if login.passcode then log.secret(login.passcode) end
  local links, msg, code = root_links(opts.api, opts.cacert)
  if not links then return nil, msg, code end
  local token_base = links.login or links.uaa
  if not token_base then
    return nil, "Cloud Foundry API " .. opts.api .. ": the root document names no login or uaa link", "BAD_RESPONSE"
  end
  -- the cf CLI's request: client "cf" with an empty secret, the origin as
  -- the query parameter login_hint={"origin":"..."}, a passcode as a form field
  local token_url, why = url.join(token_base, "oauth/token",
    login.origin and { login_hint = json.encode { origin = login.origin } } or nil)
  if not token_url then
    return nil, "Cloud Foundry API " .. opts.api .. ": the root document's login link " .. why, "BAD_RESPONSE"
  end
  local grant = {
    grant_type = "password", name = "Cloud Foundry login" .. (login.origin and (" (origin " .. login.origin .. ")") or ""),
    token_url = token_url, client_id = "cf", client_secret = "", basic = true,
    username = login.username, password = login.password, cacert = opts.cacert,
    params = login.passcode and { passcode = login.passcode } or nil,
  }
  local session, smsg, scode = oauth.session(grant, { name = "Cloud Foundry UAA", cacert = opts.cacert })
  if not session then return nil, smsg, scode end
  return client.new(C, { rest = client.rest_client(opts.api, session, "Cloud Foundry", opts.cacert),
    session = session, api = opts.api }, opts)
end

-- Builds a client around an existing rest client (tests, user scripts).
function M.new(opts)
  return client.new(C, { rest = opts.rest, api = opts.api or "" }, opts)
end

-- where: a path relative to the API, or an absolute URL (next.href, Location)
function C:request(method, where, body)
  return self:send(self.rest, { method = method, path = where, json = body,
    idempotent = (method == "GET" or method == "DELETE") })
end

function C:get_json(where, what)
  local j, msg, code, resp = self:read_json(self.rest, where, what)
  if not j then return nil, msg, code, resp end
  return j
end

-- One v3 page: its resources and the next page's href.
local function v3_page(j)
  local p = j.pagination
  return j.resources, type(p) == "table" and type(p.next) == "table" and p.next.href or nil
end

-- All pages of a v3 list. Returns resources, included(merged) | nil,msg,code.
function C:list(path, query, what)
  what = what or ("listing " .. path)
  local out, pages, code = self:read_pages(self.rest, self:where(path, query), what, v3_page)
  if not out then return nil, pages, code end
  local included = {}
  for _, j in ipairs(pages) do
    for k, v in pairs(type(j.included) == "table" and j.included or {}) do
      included[k] = included[k] or {}
      for _, r in ipairs(v) do table.insert(included[k], r) end
    end
  end
  return out, included
end

-- ------------------------------------------------------------- jobs --

-- PROCESSING / POLLING / anything unknown = pending.
function M.job_state(job)
  local s = type(job) == "table" and type(job.state) == "string" and job.state:upper() or ""
  if s == "COMPLETE" then return "complete" end
  if s == "FAILED" then return "failed" end
  return "pending"
end

-- Polls a job until COMPLETE (-> job) or FAILED (-> nil, msg, "API", job).
function C:poll_job(url, what)
  return poll.until_done { policy = self.poll_policy, progress = what,
    waiting = what .. " (job " .. url .. "; rerun to resume)",
    check = function()
      local job, msg, code = self:get_json(url, what .. ": polling the job")
      if not job then return true, nil, msg, code end
      local st = M.job_state(job)
      if st == "complete" then return true, job end
      if st == "failed" then
        return true, nil, what .. " failed: " .. (M.errors_text(job.errors) or "the job failed"), "API", job
      end
      return false, job.state
    end }
end

-- Sends a mutation; 202 -> job polled to the end. Returns job|entity, resp |
-- nil, msg, code, resp.
function C:mutate(method, path, body, what)
  local resp, msg, code = self:request(method, path, body)
  if not resp then return nil, what .. ": " .. tostring(msg), code, nil end
  if resp.status == 202 then
    local loc = resp.headers and resp.headers.location
    if not loc then return {}, resp end
    local job, jmsg, jcode = self:poll_job(loc, what)
    if not job then return nil, jmsg, jcode, resp end
    return job, resp
  end
  if resp.status == 200 or resp.status == 201 or resp.status == 204 then
    return self:body_json(resp) or {}, resp
  end
  return nil, what .. ": " .. self:response_text(resp), code_for(resp.status), resp
end

-- ---------------------------------------------------- offering / plan --

-- The plan visible in the target space (space_guids: a plan of another org
-- the user also sees is not one this space can use). Returns plan (with
-- .offering) | false | nil, msg, code.
function C:find_plan(space, names)
  names = names or M.OFFERING_NAMES
  local plans, included = self:list("/v3/service_plans",
    { names = M.PLAN, service_offering_names = names, include = "service_offering",
      space_guids = space },
    "looking up the SAP Cloud ALM API plan")
  if not plans then return nil, included end
  local offerings = {}
  for _, o in ipairs(included.service_offerings or {}) do offerings[o.guid] = o end
  local function offering_of(p)
    local rel = p.relationships and p.relationships.service_offering
    local g = rel and rel.data and rel.data.guid
    return g and offerings[g], g
  end
  for _, p in ipairs(plans) do
    p.offering = offering_of(p)
    return p
  end
  -- fallback: offerings whose display name mentions Cloud ALM API
  local offs, msg, code = self:list("/v3/service_offerings", { space_guids = space }, "listing service offerings")
  if not offs then return nil, msg, code end
  for _, o in ipairs(offs) do
    local md = o.broker_catalog and o.broker_catalog.metadata or {}
    local dn = type(md) == "table" and md.displayName or ""
    if (type(dn) == "string" and dn:lower():find("cloud alm api", 1, true))
        or (type(o.description) == "string" and o.description:lower():find("cloud alm api", 1, true)) then
      local ps, pmsg, pcode = self:list("/v3/service_plans",
        { names = M.PLAN, service_offering_guids = o.guid, space_guids = space }, "looking up the plan")
      if not ps then return nil, pmsg, pcode end
      if ps[1] then ps[1].offering = o; return ps[1] end
    end
  end
  return false
end

-- -------------------------------------------------------- instances --

function C:instances(space, plan_guid)
  local q = { space_guids = space }
  if plan_guid then q.service_plan_guids = plan_guid end
  return self:list("/v3/service_instances", q, "listing service instances of the space")
end

function C:find_instance(space, name)
  local items, msg, code = self:list("/v3/service_instances", { space_guids = space, names = name },
    "looking up instance '" .. name .. "'")
  if not items then return nil, msg, code end
  return client.named(items, name)
end

local function guid_from_href(h)
  return type(h) == "string" and h:match("/([%w%-]+)/?$") or nil
end

-- Creates a managed instance; a 422 "name is taken" or an unanswered POST
-- is settled by looking the name up. Returns instance, created | nil,msg,code.
-- POST a resource whose answer is a job; on a conflict (422/409) or no
-- answer, look it up by name first (the first attempt may have landed).
-- kind: the /v3 collection ("service_instances"); find(): item | false |
-- nil, msg, code. Returns the resource, created(bool) | nil, msg, code.
function C:_create(kind, body, what, resource, find)
  local job, msg, code, resp = self:mutate("POST", "/v3/" .. kind, body, what)
  if not job then
    local taken = resp and (resp.status == 422 or resp.status == 409)
    local unanswered = resp == nil and code ~= "DEADLINE" and code ~= "AUTH"
    if taken or unanswered then
      local it, fmsg, fcode = find()
      if it then
        self:_note { action = "adopt-after-conflict", resource = resource, id = it.guid, name = body.name }
        return it, false
      end
      if it == nil then return nil, fmsg, fcode end
    end
    return nil, msg, code
  end
  -- Cloud Controller names the finished job's link to the new resource by
  -- its type (links.service_instances, links.service_credential_bindings);
  -- no such link is a mismatch to report, not to paper over by name
  local links = type(job.links) == "table" and job.links or {}
  local link = links[kind]
  local guid = guid_from_href(type(link) == "table" and link.href or nil)
  if not guid then
    local names = {}
    for k in pairs(links) do names[#names + 1] = tostring(k) end
    table.sort(names)
    return nil, string.format("%s: the finished job has no links.%s naming the new resource (its links: %s)",
      what, kind, #names > 0 and table.concat(names, ", ") or "none"), "BAD_RESPONSE"
  end
  local item, gmsg, gcode = self:get_json("/v3/" .. kind .. "/" .. guid, "reading the new " .. resource:gsub("^cf%-", ""))
  if not item then return nil, gmsg, gcode end
  self:_note { action = "create", resource = resource, id = item.guid, name = body.name }
  return item, true
end

function C:create_instance(space, plan_guid, name, parameters, labels)
  local body = {
    type = "managed", name = name, parameters = parameters,
    metadata = labels and { labels = labels } or nil,
    relationships = { space = { data = { guid = space } }, service_plan = { data = { guid = plan_guid } } },
  }
  return self:_create("service_instances", body, "creating instance '" .. name .. "' in Cloud Foundry",
    "cf-instance", function() return self:find_instance(space, name) end)
end

-- ------------------------------------------------------------- keys --

function C:keys(instance_guid, name)
  local q = { type = "key", service_instance_guids = instance_guid }
  if name then q.names = name end
  return self:list("/v3/service_credential_bindings", q, "listing service keys")
end

function C:find_key(instance_guid, name)
  local items, msg, code = self:keys(instance_guid, name)
  if not items then return nil, msg, code end
  return client.named(items, name)
end

function C:create_key(instance_guid, name, parameters, labels)
  local body = { type = "key", name = name, parameters = parameters,
    metadata = labels and { labels = labels } or nil,
    relationships = { service_instance = { data = { guid = instance_guid } } } }
  return self:_create("service_credential_bindings", body, "creating service key '" .. name .. "'",
    "cf-key", function() return self:find_key(instance_guid, name) end)
end

-- credentials table | nil, msg, code
function C:key_details(guid)
  local j, msg, code = self:get_json("/v3/service_credential_bindings/" .. guid .. "/details",
    "reading the service key " .. guid)
  if not j then return nil, msg, code end
  if type(j.credentials) ~= "table" then
    return nil, "the service key " .. guid .. " has no credentials", "BAD_RESPONSE"
  end
  return j.credentials
end

return M
