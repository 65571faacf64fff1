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
 * property name with a NUL or a lone surrogate, or nesting deeper than `maxJsonDepth`. Walks the
 * value without recursion, so any depth is safe to check.
 *
 * @since 0.1.0
 */
export const jsonProblem = (value: unknown): string | undefined => {
  const stack: Array<{ readonly value: unknown; readonly path: ReadonlyArray<string | number> }> = [{
    value,
    path: []
  }]
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { path, value } = next
    if (typeof value === "string") {
      const problem = textProblem(value)
      if (problem !== undefined) return `the string at input${pathOf(path)} ${problem}`
    } else if (typeof value === "object" && value !== null) {
      if (path.length >= maxJsonDepth) return `input is nested deeper than ${maxJsonDepth} levels`
      if (Array.isArray(value)) {
        for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: [...path, i] })
      } else {
        for (const [key, field] of Object.entries(value)) {
          const problem = textProblem(key)
          if (problem !== undefined) return `a property name at input${pathOf(path)} ${problem}`
          stack.push({ value: field, path: [...path, key] })
        }
      }
    }
  }
  return undefined
}
