// Masking for view = MASKED, as the Go original's `sensitive` package does:
// enough to recognise one's own data, not enough to learn someone else's.
// Every mask has a fixed width: the number of stars says nothing of how long
// the hidden part is.

const STARS = "***";

/** "john@example.com" -> "j***@example.com". */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf("@");
  if (at < 1) return STARS;
  return `${[...email.slice(0, at)][0]}${STARS}${email.slice(at)}`;
}

/** "+8613800138000" -> "+86****8000": the first two digits and the last four kept. */
export function maskPhone(phone: string): string {
  if (!phone) return "";
  const digits = phone.replace(/^\+/, "");
  // Too short to keep six digits and still hide any: hide them all, same width.
  if (digits.length <= 8) return `+${"*".repeat(10)}`;
  return `+${digits.slice(0, 2)}****${digits.slice(-4)}`;
}

/** "Alice" -> "A***". */
export function maskName(name: string): string {
  const chars = [...name];
  if (chars.length === 0) return "";
  return chars[0] + STARS;
}
