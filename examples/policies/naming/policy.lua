-- A company naming convention: the instance and bindings calmbind creates are
-- named after the landscape team's scheme and carry its cost labels; every
-- other decision stays as built in.
--   CALMBIND_PATH=examples/policies/naming calmbind plan
return {
  -- at most 32 letters, digits, '-', '_' (the name becomes the xsappname)
  instance_name = function(c)
    return "acme-basis-calm-" .. c.scenario
  end,
  binding_name = function(c)
    return c.instance.name .. (c.credential_type == "x509" and "-mtls" or "-secret")
  end,
  -- when the first name is taken by a key made before the authorities
  deployment_binding_name = function(c)
    return c.instance.name .. (c.credential_type == "x509" and "-deploy-mtls" or "-deploy-secret")
  end,
  labels = function()
    return { cost_center = "CC-4711", owner = "basis-team" }
  end,
}
