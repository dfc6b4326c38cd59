-- calm.net.errtext: one line of text from a server's error answer, for calm.net.rest
-- (which re-exports it as rest.error_text) and its callers. Redacted, one
-- line, capped; a body that is not JSON is described, never quoted.
local json = require "calm.lib.json"
local log = require "calm.log"

local M = {}

-- errtext.one_line(s [, max]) -> s redacted, control characters gone, at most
-- max (300) characters.
local function one_line(s, max)
  s = log.redact(tostring(s))
  s = s:gsub("[%c]+", " "):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  max = max or 300
  if #s > max then s = s:sub(1, max - 3) .. "..." end
  return s
end

local function looks_json(resp)
  local ct = resp.headers and resp.headers["content-type"] or ""
  return ct:find("json", 1, true) ~= nil
end

local function decoded(resp)
  if resp.json ~= nil then return resp.json end
  local body = resp.body
  if type(body) ~= "string" or body == "" then return nil end
  local first = body:match("^%s*(.)")
  if first ~= "{" and first ~= "[" then return nil end
  return (json.decode(body, "response"))
end

-- The complaint in a JSON error body, by dialect: parts (lines to join) and
-- the correlation id the body names, if any.
local function json_complaint(j)
  if type(j.errors) == "table" and j.errors[1] ~= nil then -- CF v3
    local parts = {}
    for i, e in ipairs(j.errors) do
      if i > 3 then break end
      if type(e) == "table" then
        local title, detail = e.title or e.code, e.detail
        parts[#parts + 1] = (title and detail) and (tostring(title) .. ": " .. tostring(detail))
          or tostring(detail or title or "")
      end
    end
    return parts
  elseif type(j.error) == "table" then -- cis
    local e = j.error
    local s = tostring(e.message or "")
    if e.code then s = tostring(e.code) .. ": " .. s end
    if type(e.details) == "table" then
      local ds = {}
      for i, d in ipairs(e.details) do
        if i > 3 then break end
        if type(d) == "table" and d.message then ds[#ds + 1] = tostring(d.message) end
      end
      if #ds > 0 then s = s .. " (" .. table.concat(ds, "; ") .. ")" end
    end
    return { s }, e.correlationID
  elseif j.error_description or (type(j.error) == "string" and not j.description) then -- OAuth
    return { j.error and j.error_description and (tostring(j.error) .. ": " .. tostring(j.error_description))
      or tostring(j.error_description or j.error) }
  elseif j.description or j.error then -- Service Manager
    return { (j.error and j.description) and (tostring(j.error) .. ": " .. tostring(j.description))
      or tostring(j.description or j.error) }
  elseif type(j.message) == "string" then
    return { j.message }
  end
  return { "JSON body without an error message" }
end

-- What a body that is not JSON is, never what it says.
local function describe_body(resp)
  local body = type(resp.body) == "string" and resp.body or ""
  local ct = resp.headers and resp.headers["content-type"] or ""
  if body == "" then return "empty body" end
  if ct:find("html", 1, true) or body:match("^%s*<") then return "HTML error page" end
  if looks_json(resp) then return "invalid JSON body of " .. #body .. " bytes" end
  return "non-JSON body of " .. #body .. " bytes"
end

-- rest.error_text(resp) -> one line describing the server's complaint:
-- SM {error, description}; CF {errors = [{title, detail}]}; cis
-- {error = {code, message, details}}; OAuth {error, error_description}.
-- Redacted, at most 300 characters, never the raw body of a non-JSON reply.
function M.error_text(resp)
  if type(resp) ~= "table" then return "no response" end
  local j = decoded(resp)
  local parts, correlation
  if type(j) == "table" then
    parts, correlation = json_complaint(j)
  else
    parts = { describe_body(resp) }
  end
  local h = resp.headers or {}
  correlation = correlation or h["x-correlationid"] or h["x-correlation-id"] or h["x-vcap-request-id"]
  local text = table.concat(parts, "; ")
  if text == "" then text = "no error text" end
  if type(correlation) == "string" and correlation ~= "" then
    text = one_line(text, 240) .. " [correlation id " .. one_line(correlation, 56) .. "]"
  end
  return one_line(text, 300)
end
M.one_line = one_line

return M
