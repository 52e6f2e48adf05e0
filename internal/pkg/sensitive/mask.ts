// Masking for view = MASKED, as the Go original's `sensitive` package does:
// enough to recognise one's own data, not enough to learn someone else's.

/** "john@example.com" -> "j***@example.com". */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf("@");
  if (at < 1) return "***";
  return `${[...email.slice(0, at)][0]}***${email.slice(at)}`;
}

/** "+8613800138000" -> "+86*******8000": country code and last four digits kept. */
export function maskPhone(phone: string): string {
  if (!phone) return "";
  const digits = phone.replace(/^\+/, "");
  if (digits.length <= 6) return `+${"*".repeat(digits.length)}`;
  return `+${digits.slice(0, 2)}${"*".repeat(digits.length - 6)}${digits.slice(-4)}`;
}

/** "Alice" -> "A****". */
export function maskName(name: string): string {
  const chars = [...name];
  if (chars.length === 0) return "";
  return chars[0] + "*".repeat(chars.length - 1);
}
