// The windows of a usage query: the whole range, UTC hours, or local days or months of a time zone, clipped
// to the range.
import { startOfLocalDay, startOfLocalMonth } from '@billing/kit/time-zone';
import { Window as WindowKind } from '@billing/proto/billing/usage/v1/usage_service_pb';

const HOUR = 3_600_000;

/** Splits [start, end) into the windows of `kind` in `zone`. */
export function usageWindows(start: Date, end: Date, kind: WindowKind, zone: string): [Date, Date][] {
  const next = (t: Date): Date => {
    switch (kind) {
      case WindowKind.HOUR:
        return new Date((Math.floor(t.getTime() / HOUR) + 1) * HOUR);
      case WindowKind.DAY:
        return startOfLocalDay(t, zone, 1);
      case WindowKind.MONTH:
        return startOfLocalMonth(t, zone, 1);
      default:
        return end;
    }
  };
  const windows: [Date, Date][] = [];
  let from = start;
  while (from.getTime() < end.getTime()) {
    const boundary = next(from);
    const to = boundary.getTime() < end.getTime() ? boundary : end;
    windows.push([from, to]);
    from = to;
  }
  return windows;
}
