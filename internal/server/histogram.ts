import type { Metric } from "prom-client";

/** One label set's counts: observing is a search of the bounds and three additions. */
export interface HistogramSeries {
  observe(value: number): void;
}

/**
 * A Prometheus histogram for the serving path: prom-client's Histogram did,
 * on every observation, build an object, check the label names, join the
 * labels into a string key and look that up; here a label set is looked up
 * once (`series`) and each observation only counts. Every observation is
 * counted (nothing is sampled), and a scrape reads exactly what
 * prom-client's Histogram would have written for the same observations
 * (test/unit/histogram.test.ts holds the two side by side). `register`
 * puts it in a prom-client registry, which formats it.
 */
export class FastHistogram<L extends string> {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly series = new Map<string, Series<L>>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    private readonly upperBounds: readonly number[],
  ) {}

  /** The series of `labels`, made on first use; shown once it has an observation. */
  labels(labels: Record<L, string>): HistogramSeries {
    const key = this.labelNames.map((n) => labels[n]).join("\u0000");
    let found = this.series.get(key);
    if (!found) {
      found = new Series({ ...labels }, this.upperBounds);
      this.series.set(key, found);
    }
    return found;
  }

  /** Forgets every observation (prom-client's reset). */
  reset(): void {
    for (const s of this.series.values()) s.clear();
  }

  /** For the registry's text: as prom-client's Histogram writes it. */
  getForPromString() {
    const bucket = `${this.name}_bucket`;
    const values: {
      labels: Record<string, string | number>;
      sharedLabels: Record<L, string>;
      value: number;
      metricName: string;
      exemplar?: null;
    }[] = [];
    const exemplar = null;
    for (const s of this.series.values()) {
      if (s.count === 0) continue;
      let acc = 0;
      this.upperBounds.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push({
          labels: { le },
          sharedLabels: s.labels,
          value: acc,
          metricName: bucket,
          exemplar,
        });
      });
      values.push(
        {
          labels: { le: "+Inf" },
          sharedLabels: s.labels,
          value: s.count,
          metricName: bucket,
          exemplar,
        },
        { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` },
      );
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  /** As prom-client's Histogram.get(): each value's labels with its series' labels. */
  async get() {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ sharedLabels, labels, ...rest }) => ({
        ...rest,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }

  /**
   * The histogram as prom-client's registries take it: they call only
   * getForPromString, get and reset, and read name, help, type and
   * aggregator, but their types name prom-client's own classes.
   */
  asMetric(): Metric {
    return this as unknown as Metric;
  }
}

class Series<L extends string> implements HistogramSeries {
  // One per bound, and one for values above them all (only in +Inf).
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Record<L, string>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  clear(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
