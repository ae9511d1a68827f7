const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 * 1024, gb: 1024 * 1024 * 1024 };

/** "3600", "90s", "15m", "1h", "7d" → seconds. */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d+)\s*([smhd]?)$/i.exec(value.trim());
  if (!match) return undefined;
  return Number(match[1]) * (DURATION_UNITS[(match[2] || 's').toLowerCase()] ?? 1);
}

/** "1048576", "512kb", "1mb" → bytes. */
export function parseByteSize(value: string): number | undefined {
  const match = /^(\d+)\s*(b|kb|mb|gb)?$/i.exec(value.trim());
  if (!match) return undefined;
  return Number(match[1]) * (SIZE_UNITS[(match[2] || 'b').toLowerCase()] ?? 1);
}
