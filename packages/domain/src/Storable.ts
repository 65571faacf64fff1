/**
 * What the database stores unchanged: text without NUL characters or lone UTF-16 surrogates (Postgres
 * refuses the first in `text` and `jsonb` and replaces the second), and JSON nested at most
 * `maxJsonDepth` levels. Checked when ids and inputs are decoded at the edge, so that such a value is
 * a typed error naming it instead of a failed statement or silently changed data.
 *
 * @since 0.1.0
 */

/**
 * How deeply an item's input may nest arrays and objects.
 *
 * @since 0.1.0
 */
export const maxJsonDepth = 100

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Why the database would refuse or change `text`, if it would.
 *
 * @since 0.1.0
 */
export const textProblem = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "contains a NUL character (\\u0000)"
    : loneSurrogate.test(text)
    ? "contains a lone UTF-16 surrogate"
    : undefined

const loneSurrogates = new RegExp(loneSurrogate.source, "g")

/**
 * `text` as the database stores it unchanged: NUL characters and lone surrogates replaced by U+FFFD.
 *
 * @since 0.4.0
 */
export const storableText = (text: string): string =>
  textProblem(text) === undefined ? text : text.replace(/\u0000/g, "\uFFFD").replace(loneSurrogates, "\uFFFD")

/**
 * A `Schema.filter` predicate that rejects text the database would refuse or change:
 * `Schema.String.pipe(Schema.filter(Storable.text("note")))`.
 *
 * @since 0.1.0
 */
export const text = (name: string) => (value: string): true | string => {
  const problem = textProblem(value)
  return problem === undefined || `${name} ${problem}`
}

const pathOf = (path: ReadonlyArray<string | number>) =>
  path.map((part) => typeof part === "number" ? `[${part}]` : `.${part}`).join("")

/**
 * Why the database would refuse or change an encoded JSON value, if it would: the first string or
 * property name with a NUL or a lone surrogate, or nesting deeper than `maxDepth` (`maxJsonDepth` by
 * default), named from `name` (e.g. "the string at input.items[3] contains a NUL character"). Walks
 * the value without recursion, so any depth is safe to check.
 *
 * @since 0.1.0
 */
export const jsonProblem = (value: unknown, name = "input", maxDepth = maxJsonDepth): string | undefined => {
  const stack: Array<{ readonly value: unknown; readonly path: ReadonlyArray<string | number> }> = [{
    value,
    path: []
  }]
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { path, value } = next
    if (typeof value === "string") {
      const problem = textProblem(value)
      if (problem !== undefined) return `the string at ${name}${pathOf(path)} ${problem}`
    } else if (typeof value === "object" && value !== null) {
      if (path.length >= maxDepth) return `${name} is nested deeper than ${maxDepth} levels`
      if (Array.isArray(value)) {
        for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: [...path, i] })
      } else {
        for (const [key, field] of Object.entries(value)) {
          const problem = textProblem(key)
          if (problem !== undefined) return `a property name at ${name}${pathOf(path)} ${problem}`
          stack.push({ value: field, path: [...path, key] })
        }
      }
    }
  }
  return undefined
}

const unstorableText = /[\u0000\uD800-\uDFFF]/

/**
 * Why the database would refuse or change a string or property name of an encoded JSON value (any
 * depth accepted), named from `name`. Allocates nothing when there is nothing to report: for what
 * workflows produce on every attempt (outputs, step outputs, error details).
 *
 * @since 0.4.0
 */
export const jsonTextProblem = (value: unknown, name: string): string | undefined => {
  const stack: Array<unknown> = [value]
  let suspect = false
  while (stack.length > 0 && !suspect) {
    const next = stack.pop()
    if (typeof next === "string") {
      // a surrogate pair is fine: the exact test runs only on a string that has any surrogate
      suspect = unstorableText.test(next) && textProblem(next) !== undefined
    } else if (typeof next === "object" && next !== null) {
      if (Array.isArray(next)) {
        for (let i = 0; i < next.length; i++) stack.push(next[i])
      } else {
        for (const key in next) {
          if (unstorableText.test(key) && textProblem(key) !== undefined) suspect = true
          stack.push((next as Record<string, unknown>)[key])
        }
      }
    }
  }
  return suspect ? jsonProblem(value, name, Number.POSITIVE_INFINITY) : undefined
}
