/**
 * Typed workflows: a name, input / output / error schemas, and an Effect that processes one item.
 *
 * @since 0.1.0
 */
import { Errors, ItemError, Storable } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import { DurationString } from "@effect-batch/domain/Duration"
import { WorkflowName } from "@effect-batch/domain/Ids"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import type * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"

/**
 * The downstream answered "too many requests" (HTTP 429). The orchestrator holds back the limiter
 * for `retryAfter` (or an adaptive backoff), lowers the batch's effective concurrency, and retries the
 * item without consuming one of its attempts.
 *
 * @since 0.1.0
 */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  retryAfter: Schema.optionalWith(DurationString, { exact: true }),
  limiter: Schema.optionalWith(Schema.String, { exact: true })
}) {
  override get message() {
    return `rate limited${this.limiter ? ` on ${this.limiter}` : ""}${
      this.retryAfter ? `, retry after ${Duration.format(this.retryAfter)}` : ""
    }`
  }
}

/**
 * A stored step output no longer decodes with the step's schema (the code changed since it was
 * stored). The item fails as `fatal`; a person who fixed the schema re-runs it from the step.
 *
 * @since 0.3.0
 */
export class StepReplayFailed extends Schema.TaggedError<StepReplayFailed>()("StepReplayFailed", {
  step: Schema.String,
  index: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `the stored output of step ${JSON.stringify(this.step)} (#${this.index}) does not decode: ${this.reason}`
  }
}

/**
 * A step ran past its own timeout. It counts as a timeout of the attempt.
 *
 * @since 0.3.0
 */
export class StepTimedOut extends Schema.TaggedError<StepTimedOut>()("StepTimedOut", {
  step: Schema.String,
  timeout: DurationString
}) {
  override get message() {
    return `step ${JSON.stringify(this.step)} timed out after ${Duration.format(this.timeout)}`
  }
}

/**
 * A step's encoded output is larger than the worker allows (`WorkerOptions.maxStepOutputBytes`).
 *
 * @since 0.3.0
 */
export class StepOutputTooLarge extends Schema.TaggedError<StepOutputTooLarge>()("StepOutputTooLarge", {
  step: Schema.String,
  bytes: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    return `the output of step ${JSON.stringify(this.step)} is ${this.bytes} bytes, above the limit of ${this.limit}`
  }
}

/**
 * A step's encoded output holds text the database would refuse or change (a NUL character or a lone
 * surrogate).
 *
 * @since 0.4.0
 */
export class StepOutputUnstorable extends Schema.TaggedError<StepOutputUnstorable>()("StepOutputUnstorable", {
  step: Schema.String,
  problem: Schema.String
}) {
  override get message() {
    return `the output of step ${JSON.stringify(this.step)} cannot be stored: ${this.problem}`
  }
}

/**
 * What can fail a step besides its own errors.
 *
 * @since 0.3.0
 */
export type StepError = StepReplayFailed | StepTimedOut | StepOutputTooLarge | StepOutputUnstorable

/**
 * How a step runs.
 *
 * @since 0.3.0
 */
export interface StepOptions<A, AE, E> {
  /** the schema its output is stored with */
  readonly output: Schema.Schema<A, AE>
  /**
   * retries of the step within one attempt of the item, before the item's own retry policy sees
   * its error; a `RateLimited` is never retried here (the item is throttled instead)
   */
  readonly retry?: Schedule.Schedule<unknown, NoInfer<E>> | undefined
  /** a timeout of its own, within the attempt's */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * What a workflow's `run` can see about the item it processes.
 *
 * @since 0.1.0
 */
export interface ItemContext {
  readonly batchId: Ids.BatchId
  readonly itemKey: Ids.ItemKey
  /** 1 for the first attempt */
  readonly attempt: number
  readonly round: number
  /**
   * Runs `effect` under a named rate limiter, waiting for a permit and while the limiter is held
   * back: the batch's own limiter of that name (its config's `rateLimits`), otherwise the tenant's
   * shared limiter, exact across every process. An undefined shared limiter fails the item (fatal,
   * `LimiterNotFound`).
   */
  readonly limit: (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * A durable step: runs `effect` once per item, stores its output (encoded with `options.output`)
   * with a `StepCompleted` event, and on every later attempt of the item — after a failure, a
   * timeout, a crash or a redrive — returns the stored output instead of running it again. Steps
   * are named explicitly; a name called more than once within an item is told apart by the order of
   * the calls.
   */
  readonly step: <A, AE, E, R>(
    name: string,
    effect: Effect.Effect<A, E, R>,
    options: StepOptions<A, AE, E>
  ) => Effect.Effect<A, E | StepError, R>
}

/**
 * Marks a value made with `make`: a string, so that it is recognised across copies of this package.
 *
 * @since 0.5.0
 * @category type ids
 */
export const TypeId: TypeId = "~@effect-batch/server/Workflow"

/**
 * @since 0.5.0
 * @category type ids
 */
export type TypeId = "~@effect-batch/server/Workflow"

/**
 * A typed workflow.
 *
 * @since 0.1.0
 */
export interface Workflow<I, IE, O, OE, E, EE, R> {
  readonly [TypeId]: TypeId
  readonly name: Ids.WorkflowName
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
  readonly error: Schema.Schema<E, EE>
  /** whether a typed error may be retried (default: every typed error is retryable) */
  readonly retryable: (error: E) => boolean
  /** the names of its steps, in order, when it declares them (progress shows steps done / declared) */
  readonly steps: ReadonlyArray<string> | undefined
  readonly run: (input: I, context: ItemContext) => Effect.Effect<O, E | RateLimited | StepError, R>
}

/**
 * Defines a workflow.
 *
 * @example
 * const Extract = Workflow.make({
 *   name: "extract",
 *   input: Schema.Struct({ url: Schema.String }),
 *   output: Schema.Struct({ title: Schema.String }),
 *   error: FetchError,
 *   retryable: (e) => e.status >= 500,
 *   run: (doc) => fetchTitle(doc.url)
 * })
 *
 * @since 0.1.0
 */
export const make = <I, IE, O, OE, E, EE, R>(options: {
  readonly name: string
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
  readonly error: Schema.Schema<E, EE>
  readonly retryable?: ((error: E) => boolean) | undefined
  readonly steps?: ReadonlyArray<string> | undefined
  readonly run: (input: I, context: ItemContext) => Effect.Effect<O, E | RateLimited | StepError, R>
}): Workflow<I, IE, O, OE, E, EE, R> => ({
  [TypeId]: TypeId,
  name: Schema.decodeSync(WorkflowName)(options.name),
  input: options.input,
  output: options.output,
  error: options.error,
  retryable: options.retryable ?? (() => true),
  steps: options.steps,
  run: options.run
})

/**
 * Whether `u` is a workflow made with `make` (by this or another copy of the package). A value cannot
 * tell which services its `run` needs: the guard answers for a workflow that needs none, which is what
 * a module loaded at run time (`effect-batch serve --workflows`) must export.
 *
 * @since 0.5.0
 */
export const isWorkflow = (u: unknown): u is Workflow<any, any, any, any, any, any, never> =>
  Predicate.hasProperty(u, TypeId) && u[TypeId] === TypeId

/**
 * Why an attempt failed, as the orchestrator classifies it.
 *
 * @since 0.1.0
 */
export interface AttemptFailure {
  readonly error: ItemError.ItemError
  readonly retryAfter: Option.Option<Duration.Duration>
  readonly limiter: Option.Option<string>
}

/**
 * A workflow with its types erased and its requirements provided: what the orchestrator runs.
 * Inputs and outputs are in their encoded (JSON) form.
 *
 * @since 0.1.0
 */
export interface Runnable {
  readonly name: Ids.WorkflowName
  /** the names of the steps it declares, in order */
  readonly steps: ReadonlyArray<string> | undefined
  /** decodes an input and re-encodes it in canonical form, or explains why it is invalid */
  readonly normalizeInput: (input: unknown) => Effect.Effect<unknown, string>
  /** runs one attempt on an encoded input, giving the encoded output */
  readonly run: (input: unknown, context: ItemContext) => Effect.Effect<unknown, AttemptFailure>
}

const messageOf = (u: unknown): string =>
  Predicate.hasProperty(u, "message") && typeof u.message === "string" ? u.message : String(u)

const tagOf = (u: unknown): Option.Option<string> =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" ? Option.some(u._tag) : Option.none()

/** An attempt's failure, with its text as the database stores it (details it would refuse are left out). */
const failure = (category: ItemError.ErrorCategory, cause: unknown, details?: unknown): AttemptFailure => {
  const unstorable = details === undefined ? undefined : Storable.jsonTextProblem(details, "details")
  const message = messageOf(cause) + (unstorable === undefined ? "" : ` (details not stored: ${unstorable})`)
  return {
    error: ItemError.ItemError.make({
      category,
      message: Storable.storableText(message.slice(0, 4000)),
      ...Option.match(tagOf(cause), { onNone: () => ({}), onSome: (tag) => ({ tag: Storable.storableText(tag) }) }),
      ...(details === undefined || unstorable !== undefined ? {} : { details })
    }),
    retryAfter: Option.none(),
    limiter: Option.none()
  }
}

/**
 * Erases a workflow's types, capturing the services it needs from the current context.
 *
 * @since 0.1.0
 */
export const toRunnable = <I, IE, O, OE, E, EE, R>(
  workflow: Workflow<I, IE, O, OE, E, EE, R>
): Effect.Effect<Runnable, never, R> =>
  Effect.map(Effect.context<R>(), (context: Context.Context<R>): Runnable => {
    const decodeInput = Schema.decodeUnknown(workflow.input)
    const encodeInput = Schema.encode(workflow.input)
    const encodeOutput = Schema.encode(workflow.output)
    const encodeError = Schema.encode(workflow.error)
    const isError = Schema.is(workflow.error)
    const classify = (error: E | RateLimited | StepError): Effect.Effect<AttemptFailure> => {
      if (error instanceof RateLimited) {
        return Effect.succeed({
          ...failure("rate-limited", error),
          retryAfter: Option.fromNullable(error.retryAfter),
          limiter: Option.fromNullable(error.limiter)
        })
      }
      if (error instanceof StepTimedOut) return Effect.succeed(failure("timeout", error))
      if (
        error instanceof StepReplayFailed || error instanceof StepOutputTooLarge ||
        error instanceof StepOutputUnstorable
      ) {
        return Effect.succeed(failure("fatal", error))
      }
      const category = isError(error) && !workflow.retryable(error) ? "fatal" : "retryable"
      return encodeError(error).pipe(
        Effect.match({
          onFailure: () => failure(category, error),
          onSuccess: (details) => failure(category, error, details)
        })
      )
    }
    return {
      name: workflow.name,
      steps: workflow.steps,
      normalizeInput: (input) =>
        decodeInput(input).pipe(
          Effect.flatMap(encodeInput),
          Effect.mapError((e) => ParseResult.TreeFormatter.formatErrorSync(e))
        ),
      run: (input, itemContext) =>
        decodeInput(input).pipe(
          Effect.mapError((e) => failure("fatal", { message: `invalid stored input: ${e.message}` })),
          Effect.flatMap((decoded) =>
            workflow.run(decoded, itemContext).pipe(
              Effect.catchAll((e) => Effect.flip(classify(e))),
              Effect.flatMap((output) =>
                Effect.mapError(
                  encodeOutput(output),
                  (e) => failure("defect", { message: `invalid output: ${e.message}` })
                )
              ),
              Effect.flatMap((encoded) => {
                const problem = Storable.jsonTextProblem(encoded, "output")
                return problem === undefined
                  ? Effect.succeed(encoded)
                  : Effect.fail(failure("fatal", { message: `the output cannot be stored: ${problem}` }))
              })
            )
          ),
          Effect.catchAllDefect((defect) =>
            // an unknown shared limiter stays unknown until someone defines it: not worth a retry
            Effect.fail(failure(defect instanceof Errors.LimiterNotFound ? "fatal" : "defect", defect))
          ),
          // the captured context holds every service the workflow needs: set it, do not merge it
          Effect.mapInputContext((): Context.Context<R> => context)
        )
    }
  })

/**
 * Marks an attempt failure as a timeout.
 *
 * @since 0.1.0
 */
export const timedOut = (timeout: Duration.Duration): AttemptFailure =>
  failure("timeout", { message: `attempt timed out after ${Duration.format(timeout)}`, _tag: "Timeout" })

/**
 * Marks an attempt that was interrupted by something other than its timeout (the workflow
 * interrupted itself) as a defect.
 *
 * @since 0.2.0
 */
export const interrupted: AttemptFailure = failure("defect", {
  message: "the attempt was interrupted",
  _tag: "Interrupted"
})

/**
 * The failure of an attempt whose process died or hung past its lease (`worker-lost`): `used`
 * attempts of the item are used, this one included, and its lease has been lost `losses` times.
 *
 * @since 0.4.0
 */
export const workerLost = (used: number, losses: number): AttemptFailure =>
  failure("worker-lost", {
    message: `the process running attempt ${used} of this item died or hung past its lease ` +
      `(the item's lease has been lost ${losses} time${losses === 1 ? "" : "s"})`,
    _tag: "WorkerLost"
  })
