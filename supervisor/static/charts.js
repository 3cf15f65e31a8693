// The selected stream's charts, drawn with the vendored uPlot (window.uPlot, loaded by
// index.html from /static/vendor/). One uPlot per chart, rebuilt only when its series change
// (a rendition appears); otherwise setData.
import { CHARTS, pointCount } from "./history.js";

const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#8a96a3"];
const HEIGHT_PX = 140;

export class StreamCharts {
  constructor(container) {
    this.container = container;
    this.panels = new Map(); // chart name → {node, plot, labels, data}
    for (const [name, chart] of Object.entries(CHARTS)) {
      const node = document.createElement("figure");
      node.className = "chart";
      node.dataset.chart = name;
      const caption = document.createElement("figcaption");
      caption.textContent = chart.title;
      node.append(caption);
      container.append(node);
      this.panels.set(name, { node, plot: null, labels: null, data: null });
    }
    // the grid reflows with the window: each plot follows its cell's width
    window.addEventListener("resize", () => {
      for (const panel of this.panels.values()) panel.plot?.setSize({ width: widthOf(panel.node), height: HEIGHT_PX });
    });
  }

  /** Redraw every chart from one stream's samples (oldest first). */
  update(samples) {
    for (const [name, chart] of Object.entries(CHARTS)) {
      const panel = this.panels.get(name);
      const { labels, data } = chart.series(samples);
      panel.data = data;
      if (panel.plot && panel.labels.join("|") === labels.join("|")) {
        panel.plot.setData(data);
        continue;
      }
      panel.plot?.destroy();
      panel.labels = labels;
      panel.plot = new window.uPlot(
        {
          width: widthOf(panel.node),
          height: HEIGHT_PX,
          legend: { show: labels.length > 1, live: false },
          scales: { x: { time: true } },
          axes: [
            { stroke: "#8a96a3", grid: { stroke: "#2a323c" } },
            { stroke: "#8a96a3", grid: { stroke: "#2a323c" }, size: 50 },
          ],
          series: [
            {},
            ...labels.map((label, i) => ({
              label,
              stroke: COLORS[i % COLORS.length],
              width: 1.5,
              spanGaps: false,
              points: { show: samples.length < 3 },
            })),
          ],
        },
        data,
        panel.node,
      );
    }
  }

  /** Chart name → {points, series}: what the page draws, for tests and the console. */
  summary() {
    const out = {};
    for (const [name, panel] of this.panels) {
      out[name] = { points: panel.data ? pointCount(panel.data) : 0, series: panel.labels ?? [] };
    }
    return out;
  }

  clear() {
    for (const panel of this.panels.values()) {
      panel.plot?.destroy();
      Object.assign(panel, { plot: null, labels: null, data: null });
    }
  }
}

function widthOf(node) {
  return Math.max(240, node.clientWidth || 320);
}
