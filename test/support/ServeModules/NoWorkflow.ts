/** A module whose export looks like a workflow but was not made with `Workflow.make`. */
export const paced = { name: "paced", run: () => null }
