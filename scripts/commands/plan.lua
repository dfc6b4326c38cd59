-- calmbind plan: the same decision as get, with read-only requests only:
-- prints what get would find, create, update or leave alone, and why.
return require("calm.runner").command("plan")
