// How things read: author lines, times in the viewer's time zone, counts.

import { h } from "./dom.js";

/** A display part cleaned of what sloppy profiles leave: spaces, stray commas ("Albany ,"). */
export function cleanPart(value) {
  return String(value ?? "")
    .replace(/\s+/g, " ")
    .replace(/^[\s,;]+|[\s,;]+$/g, "");
}

/** The parts of an author line, in order, without the empty ones. */
export function authorParts(author) {
  if (!author) return [];
  const name = cleanPart(author.name) || "Anonymous";
  let region = cleanPart(author.region);
  if (/^[a-z]{2}$/i.test(region)) region = region.toUpperCase();
  const country = cleanPart(author.country).toUpperCase();
  return [name, cleanPart(author.profession), cleanPart(author.city), region, country].filter(
    (part) => part !== "",
  );
}

/** "Name, Profession, City, ST, COUNTRY says" as text. */
export function authorLine(author, verb = "says") {
  const parts = authorParts(author);
  return parts.length ? `${parts.join(", ")}${verb ? ` ${verb}` : ""}` : "";
}

/**
 * The author line as nodes: each part in its own `<bdi dir="auto">` (a right-to-left name
 * does not reorder the commas around it); its text content is exactly authorLine().
 */
export function authorNodes(author, verb = "says") {
  const nodes = [];
  authorParts(author).forEach((part, index) => {
    if (index > 0) nodes.push(", ");
    nodes.push(h("bdi", { dir: "auto", class: index === 0 ? "name" : null, text: part }));
  });
  if (verb && nodes.length) nodes.push(` ${verb}`);
  return nodes;
}

/** The first name part only, for "Reply to Maya". */
export function authorName(author) {
  return authorParts(author)[0] || "this comment";
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "Jun 12, 2025, 1:41 PM" in the viewer's time zone. */
export function formatDateTime(value) {
  const date = toDate(value);
  return date ? dateTime.format(date) : "";
}

/** "1:41 PM" (or "13:41", as the viewer's locale writes it). */
export function formatTime(value) {
  const date = toDate(value);
  return date ? timeOnly.format(date) : "";
}

/** "2:32 PM" when it is today (in the viewer's zone), else "Jun 13, 2025, 2:32 PM". */
export function formatWhen(value) {
  const date = toDate(value);
  if (!date) return "";
  return date.toDateString() === new Date().toDateString() ? timeOnly.format(date) : dateTime.format(date);
}

/** "30 s", "2 min", "1 min 30 s": a length of time in seconds, as slow mode speaks of it. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  const rest = s % 60;
  return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
}

/** A `<time datetime>` element showing the date and time, the full form on hover. */
export function timeElement(value, { testid = "time", timeOnlyText = false } = {}) {
  const date = toDate(value);
  if (!date) return null;
  return h("time", {
    testid,
    datetime: date.toISOString(),
    title: full.format(date),
    text: timeOnlyText ? timeOnly.format(date) : dateTime.format(date),
  });
}

export function answeredText(value) {
  return `Answered live at ${formatTime(value)}`;
}

/** "Erin" from the server's "Erin (hs-staff-0042)". */
export function moderatorName(removedBy) {
  if (!removedBy) return "a moderator";
  const match = /^(.*\S)\s+\(([^()]*)\)$/.exec(removedBy);
  return (match ? match[1] : removedBy).trim() || "a moderator";
}

export function removedText(removedBy, removedAt) {
  const when = formatTime(removedAt);
  return `Removed by ${moderatorName(removedBy)}${when ? ` at ${when}` : ""}`;
}

/** "1 Comment", "189 Comments". */
export function count(n, singular, plural = `${singular}s`) {
  const value = Number(n) || 0;
  return `${value.toLocaleString()} ${value === 1 ? singular : plural}`;
}
