/**
 * A workflow module for `effect-batch serve --workflows`: the test server's workflows, `paced` and `echo`.
 */
export { echo, paced } from "./HttpServer.js"
