// Times and days as people read them, in the browser's language and time zone (Intl): "14:05" today,
// "Yesterday 14:05", "Mon 14:05" within a week, else the date; and a line between the days of a history.

const DAY_MS = 24 * 3600 * 1000;
// Within this many days back a weekday names the day unambiguously.
const WEEKDAY_DAYS = 6;

const clock = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const shortDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
const fullDay = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric" });
const longDay = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function parse(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

function capitalised(text) {
  return text.charAt(0).toLocaleUpperCase() + text.slice(1);
}

// Local calendar days from `date` to `now` (0: the same day; calendar days, not 24-hour spans).
function daysAgo(date, now) {
  const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  // A time ahead of this clock (the server's runs ahead) counts as today.
  return Math.max(0, Math.round((start(now) - start(date)) / DAY_MS));
}

// A key that is the same for two times of one local day.
export function dayKey(iso) {
  const date = parse(iso);
  return date ? `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}` : "";
}

// "Today", "Yesterday", else "Mon 30 Nov 2026" (in the browser's own order and words).
export function dayLabel(iso, now = new Date()) {
  const date = parse(iso);
  if (!date) return "";
  const days = daysAgo(date, now);
  if (days === 0 || days === 1) return capitalised(relative.format(-days, "day"));
  return fullDay.format(date);
}

// The day in full, for a tooltip or a screen reader: "Monday 30 November 2026".
export function longDayLabel(iso) {
  const date = parse(iso);
  return date ? longDay.format(date) : "";
}

// A message's time: the clock today, with the day before it otherwise.
export function messageTime(iso, now = new Date()) {
  const date = parse(iso);
  if (!date) return "";
  const days = daysAgo(date, now);
  const time = clock.format(date);
  if (days === 0) return time;
  if (days === 1) return `${capitalised(relative.format(-1, "day"))} ${time}`;
  if (days > 1 && days <= WEEKDAY_DAYS) return `${weekday.format(date)} ${time}`;
  return `${shortDate.format(date)}, ${time}`;
}

// The short time of a conversation's last message in the list: the clock today, else the day alone.
export function listTime(iso, now = new Date()) {
  const date = parse(iso);
  if (!date) return "";
  const days = daysAgo(date, now);
  if (days === 0) return clock.format(date);
  if (days === 1) return capitalised(relative.format(-1, "day"));
  if (days > 1 && days <= WEEKDAY_DAYS) return weekday.format(date);
  return shortDate.format(date);
}
