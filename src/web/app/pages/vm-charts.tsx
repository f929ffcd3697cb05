// The VM's I/O over a window: IOPS, latency (p90/p99) and throughput, one chart each, from its
// series (GET /api/v1/vms/:vm/series). The page passes the series and the window picker's state.
import { useId, useMemo } from 'react';
import { Chart, type ChartOption } from '../parts/chart.js';
import { Empty } from '../parts/states.js';
import {
  SERIES_WINDOWS,
  vmCharts,
  type ChartData,
  type SeriesShape,
  type SeriesWindow,
} from '../vm-series.js';

function option(data: ChartData, unit: string): ChartOption {
  return {
    grid: { left: 56, right: 16, top: 36, bottom: 28 },
    legend: { top: 4 },
    tooltip: { trigger: 'axis' },
    xAxis: { type: 'time' },
    yAxis: { type: 'value', name: unit, nameGap: 8, min: 0 },
    series: data.lines.map((l) => ({
      name: l.name,
      type: 'line',
      showSymbol: false,
      connectNulls: false,
      data: l.values.map((v, i) => [data.times[i], v]),
    })),
  };
}

export function WindowPicker({
  value,
  onChange,
}: {
  value: SeriesWindow;
  onChange: (w: SeriesWindow) => void;
}) {
  const id = useId();
  return (
    <span className="window-picker">
      <label htmlFor={id}>Window</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value as SeriesWindow)}>
        {SERIES_WINDOWS.map((w) => (
          <option key={w} value={w}>
            last {w}
          </option>
        ))}
      </select>
    </span>
  );
}

export function VmCharts({ vm, series, window }: { vm: string; series: SeriesShape; window: string }) {
  const charts = useMemo(() => vmCharts(series), [series]);
  const options = useMemo(
    () => ({
      iops: option(charts.iops, 'IOPS'),
      latency: option(charts.latency, 'ms'),
      throughput: option(charts.throughput, 'MiB/s'),
    }),
    [charts],
  );
  if (charts.empty)
    return (
      <Empty>
        No I/O of {vm} was measured in the last {window}.
      </Empty>
    );
  return (
    <div className="charts">
      <Chart option={options.iops} label={`IOPS of ${vm} over the last ${window}, read and write`} />
      <Chart
        option={options.latency}
        label={`Latency of ${vm} over the last ${window}: p90 and p99, read and write, in ms`}
      />
      <Chart
        option={options.throughput}
        label={`Throughput of ${vm} over the last ${window}, read and write, in MiB/s`}
      />
    </div>
  );
}
