/**
 * `text`, cut to at most `max` characters (never inside a surrogate pair) and marked as cut.
 */
export const truncate = (text: string, max: number): string => {
  if (text.length <= max) return text
  const end = /[\uD800-\uDBFF]/.test(text.charAt(max - 1)) ? max - 1 : max
  return `${text.slice(0, end)}… (${text.length - end} more characters)`
}
