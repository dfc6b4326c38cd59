-- A company naming convention: the instance and binding calmbind creates are
-- named after the landscape team's scheme and carry its cost labels; every
-- other decision stays as built in.
--   CALMBIND_PATH=examples/policies/naming calmbind plan
return {
  -- at most 32 letters, digits, '-', '_' (the name becomes the xsappname)
  instance_name = function(c)
    return "acme-basis-calm-" .. c.scenario
  end,
  binding_name = function(instance, c)
    return instance .. (c.credential_type == "x509" and "-mtls" or "-secret")
  end,
  labels = function()
    return { cost_center = "CC-4711", owner = "basis-team" }
  end,
}
