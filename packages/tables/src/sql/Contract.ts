/**
 * The typed contracts between the hot statements and the code that calls them: each row that crosses
 * the boundary is declared once, as its columns with their SQL types, and both the SQL
 * (`jsonb_to_recordset(...) AS x(<columns>)`, `jsonb_build_array(<columns>)`) and the TypeScript
 * encoder or decoder are derived from that declaration.
 *
 * @since 0.2.0
 */

type SqlType = "int" | "bigint" | "float8" | "text" | "jsonb" | "boolean"
type Column = SqlType | `${SqlType}?`

type TsOf<T extends string> = T extends "int" | "bigint" | "float8" ? number
  : T extends "text" ? string
  : T extends "boolean" ? boolean
  : unknown

/**
 * The TypeScript row for a column declaration; a column whose type ends in `?` may be `null`.
 *
 * @since 0.2.0
 */
export type RowOf<C extends Record<string, Column>> = {
  readonly [K in keyof C]: C[K] extends `${infer T}?` ? TsOf<T> | null : TsOf<C[K]>
}

/**
 * The column list of a record set, `name type, …`, for `jsonb_to_recordset(...) AS x(...)`.
 *
 * @since 0.2.0
 */
export const recordset = (columns: Record<string, Column>): string =>
  Object.entries(columns).map(([name, type]) => `${name} ${type.replace("?", "")}`).join(", ")

/**
 * A start mark: the attempt `attempt` of item `key` began executing at `at_ms`.
 *
 * @since 0.2.0
 */
export const startColumns = { idx: "int", key: "text", attempt: "int", at_ms: "bigint" } as const satisfies Record<
  string,
  Column
>
/** @since 0.2.0 */
export type StartRow = RowOf<typeof startColumns>

/**
 * The outcome of one attempt, fenced by the lease owner and `attempt`.
 *
 * @since 0.2.0
 */
export const outcomeColumns = {
  idx: "int",
  key: "text",
  attempt: "int",
  state: "text",
  output: "jsonb?",
  error: "jsonb?",
  due_at_ms: "bigint?",
  consumed: "int",
  throttles: "int",
  rounds_failed: "int",
  duration_ms: "float8",
  reason: "text?",
  fail: "boolean",
  /** the index of this attempt's start mark when it is in the same group, so both apply as one update */
  sidx: "int?",
  /** when that start mark says the attempt started */
  at_ms: "bigint?"
} as const satisfies Record<string, Column>
/** @since 0.2.0 */
export type OutcomeRow = RowOf<typeof outcomeColumns>

/**
 * A completed durable step of the attempt `attempt` of item `key`: its `n`-th call of `name`, with
 * its encoded output; `sidx` names the attempt's start mark when it is in the same group.
 *
 * @since 0.3.0
 */
export const stepColumns = {
  idx: "int",
  key: "text",
  attempt: "int",
  name: "text",
  n: "int",
  output: "jsonb",
  sidx: "int?"
} as const satisfies Record<string, Column>
/** @since 0.3.0 */
export type StepRow = RowOf<typeof stepColumns>

/**
 * An event to append: `kind` and `idx` name the start mark (`s`), outcome (`o`) or step (`p`) it
 * belongs to, so that only the events of recorded entries are stored; `x` is an event that belongs to
 * no entry.
 *
 * @since 0.2.0
 */
export const eventColumns = {
  kind: "text",
  idx: "int",
  ord: "int",
  tag: "text",
  payload: "jsonb"
} as const satisfies Record<string, Column>
/** @since 0.2.0 */
export type EventRow = RowOf<typeof eventColumns>

/**
 * A claimed item, returned as a JSON array in this order (the cheapest form to build and to read),
 * followed by whether the item has stored durable steps.
 *
 * @since 0.2.0
 */
export const claimedColumns = [
  "key",
  "ordinal",
  "input",
  "attempt",
  "consumed",
  "throttles",
  "round",
  "rounds_failed",
  "lost_leases"
] as const

/**
 * An item leased by this process. `attempt` is the fencing token: its start mark and its outcome are
 * recorded only while this owner holds it with the same attempt.
 *
 * @since 0.2.0
 */
export interface ClaimedItem {
  readonly key: string
  readonly ordinal: number
  readonly input: unknown
  readonly attempt: number
  readonly consumed: number
  readonly throttles: number
  readonly round: number
  readonly rounds_failed: number
  /**
   * how many times an owner holding the item lost its lease: an attempt of such an item has its start
   * recorded before it runs
   */
  readonly lost_leases: number
  /** whether the item has stored durable steps (an attempt without any reads none) */
  readonly storedSteps: boolean
}

/**
 * Reads one claimed item from its JSON array (see `claimedColumns`); anything else is a defect (the
 * statement and this reader disagree).
 *
 * @since 0.2.0
 */
export const claimedFromJson = (json: unknown): ClaimedItem => {
  const row = Array.isArray(json) && json.length === claimedColumns.length + 1 ? json : undefined
  if (row === undefined || typeof row[0] !== "string") {
    throw new Error(`a claimed item is not [${claimedColumns.join(", ")}, stored_steps]: ${JSON.stringify(json)}`)
  }
  return {
    key: String(row[0]),
    ordinal: Number(row[1]),
    input: row[2],
    attempt: Number(row[3]),
    consumed: Number(row[4]),
    throttles: Number(row[5]),
    round: Number(row[6]),
    rounds_failed: Number(row[7]),
    lost_leases: Number(row[8]),
    storedSteps: row[9] === true
  }
}
