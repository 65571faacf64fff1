/** A workflow module that fails to import. */
throw new Error("this module is broken on purpose")
