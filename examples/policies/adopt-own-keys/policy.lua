-- Adopt only keys calmbind made: SAP's generated key and hand-made keys may
-- be pasted in other systems already, so this landscape always gets a key of
-- its own (a new binding; SAP's key stays untouched). Reruns adopt that key.
--   CALMBIND_PATH=examples/policies/adopt-own-keys calmbind get --out key.json
return {
  adoptable = function(c)
    return c.binding.ours
  end,
}
