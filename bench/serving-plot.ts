// The vLLM paper's serving figure: request throughput (req/s) against mean normalized latency
// (s/token), one line per label, from `bench serving` result JSONs. A vega-lite spec compiled by
// vega and rendered headless to SVG (no canvas needed).

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as vega from 'vega';
import { type TopLevelSpec, compile } from 'vega-lite';

export interface PlotInput {
  label: string;
  model?: string;
  workload?: string;
  rates: { requestRate: number | string; requestThroughput: number | null; meanNormalizedLatency: number | null; completed?: number }[];
}

export interface PlotPoint {
  label: string;
  requestRate: string;
  requestThroughput: number;
  meanNormalizedLatency: number;
}

export function plotPoints(inputs: readonly PlotInput[]): PlotPoint[] {
  return inputs.flatMap((r) =>
    r.rates
      .filter((x) => Number.isFinite(x.requestThroughput) && Number.isFinite(x.meanNormalizedLatency) && (x.completed ?? 1) > 0)
      .map((x) => ({
        label: r.label,
        requestRate: x.requestRate === Infinity ? 'inf' : String(x.requestRate),
        requestThroughput: x.requestThroughput as number,
        meanNormalizedLatency: x.meanNormalizedLatency as number,
      })),
  );
}

export function servingSpec(inputs: readonly PlotInput[]): TopLevelSpec {
  const workloads = [...new Set(inputs.map((r) => [r.model, r.workload].filter(Boolean).join(', ')))].filter(Boolean);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Serving: normalized latency against request throughput', subtitle: workloads.join('; ') || undefined },
    width: 480,
    height: 320,
    background: 'white',
    data: { values: plotPoints(inputs) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'requestThroughput', type: 'quantitative', title: 'Request throughput (req/s)' },
      y: { field: 'meanNormalizedLatency', type: 'quantitative', title: 'Normalized latency (s/token)' },
      color: { field: 'label', type: 'nominal', title: null },
      order: { field: 'requestThroughput', type: 'quantitative' },
      tooltip: [{ field: 'label' }, { field: 'requestRate', title: 'request rate' }, { field: 'requestThroughput' }, { field: 'meanNormalizedLatency' }],
    },
  } as TopLevelSpec;
}

/** Renders the figure of these results to an SVG string. */
export async function servingSvg(inputs: readonly PlotInput[]): Promise<string> {
  const view = new vega.View(vega.parse(compile(servingSpec(inputs)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes the figure of these results (objects or JSON file paths) to an SVG file. */
export async function plotServing(inputs: readonly (PlotInput | string)[], file: string): Promise<void> {
  const rs = inputs.map((x) => (typeof x === 'string' ? (JSON.parse(readFileSync(x, 'utf8')) as PlotInput) : x));
  const svg = await servingSvg(rs);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, svg);
}
