// uPlot charts of the GUI (the vendored global ``uPlot``); each is destroyed when its page is left.
import { onLeave } from "./dom.js";

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
export const STEP_AXES = [{ label: "horizon step", incrs: [1, 2, 5, 10, 20, 50, 100] }, { label: "MAE" }];

const destroyed = new WeakSet();

/** Destroys ``made`` once (a page may replace its chart before it is left). */
export function dispose(made) {
  if (destroyed.has(made)) return;
  destroyed.add(made);
  made.destroy();
}

export function chart(container, opts, data) {
  const width = Math.max(320, Math.min(900, container.clientWidth || 640));
  const made = new uPlot({ width, height: 280, ...opts }, data, container);
  onLeave(() => dispose(made));
  return made;
}

/** A number, or null for a gap (uPlot draws no point there). */
export const orNull = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** Steps 1..n of the longest curve and each curve padded with nulls to it. */
export function stepData(curves) {
  const n = Math.max(0, ...curves.map((c) => c.length));
  const steps = Array.from({ length: n }, (_, i) => i + 1);
  return [steps, ...curves.map((c) => steps.map((_, i) => orNull(c[i])))];
}
