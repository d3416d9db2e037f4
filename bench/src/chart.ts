// docs/benchmarks.svg: one horizontal bar per scenario (median ratio to the baseline of the same
// round), the min–max over the rounds as a whisker, each latchkey target as a red tick, and the
// baseline at 1.0×. Plain SVG text, no dependency.
import type { ScenarioSummary } from './report.js';
import type { Group } from './scenarios.js';

const GROUP_TITLES: Record<Group, string> = {
  reference: 'Reference',
  session: 'Session load (cookie, sliding renewal)',
  bearer: 'Bearer check',
  limiter: 'Login limiter check',
};

const TITLE = 'Throughput relative to Koa + one Redis GET, same round (median)';

const COLORS = { latchkey: '#2f6fdf', peer: '#9aa3ad', reference: '#4d5560', target: '#d62728' };

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderChart(summaries: readonly ScenarioSummary[]): string {
  const labelW = 300;
  const plotW = 460;
  const right = 70;
  const barH = 18;
  const gap = 6;
  const groupGap = 26;
  const top = 56;
  const finite = summaries.flatMap((s) => [s.ratio, s.ratioMax]).filter((v) => Number.isFinite(v));
  const maxRatio = Math.max(1.2, ...finite) * 1.05;
  const scale = (r: number): number => labelW + (Math.max(0, r) / maxRatio) * plotW;

  const body: string[] = [];
  let y = top;
  const groups: Group[] = ['reference', 'session', 'bearer', 'limiter'];
  for (const group of groups) {
    const rows = summaries.filter((s) => s.def.group === group);
    if (rows.length === 0) continue;
    y += 6;
    body.push(
      `<text x="12" y="${y + 4}" font-weight="bold" font-size="13">${esc(GROUP_TITLES[group])}</text>`,
    );
    y += 12;
    for (const s of rows) {
      const color =
        s.def.latchkey === true ? COLORS.latchkey : group === 'reference' ? COLORS.reference : COLORS.peer;
      const w = Number.isFinite(s.ratio) ? scale(s.ratio) - labelW : 0;
      const cy = y + barH / 2;
      body.push(
        `<text x="${labelW - 8}" y="${cy + 4}" text-anchor="end" font-size="12"${s.def.latchkey === true ? ' font-weight="bold"' : ''}>${esc(s.def.label)}</text>`,
        `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}" rx="2"/>`,
      );
      if (Number.isFinite(s.ratioMin) && Number.isFinite(s.ratioMax)) {
        const x1 = scale(s.ratioMin).toFixed(1);
        const x2 = scale(s.ratioMax).toFixed(1);
        body.push(
          `<line x1="${x1}" x2="${x2}" y1="${cy}" y2="${cy}" stroke="#222" stroke-width="1"/>`,
          `<line x1="${x1}" x2="${x1}" y1="${cy - 4}" y2="${cy + 4}" stroke="#222"/>`,
          `<line x1="${x2}" x2="${x2}" y1="${cy - 4}" y2="${cy + 4}" stroke="#222"/>`,
        );
      }
      const min = s.def.target?.minRatio;
      if (min !== undefined) {
        const tx = scale(min).toFixed(1);
        body.push(
          `<line x1="${tx}" x2="${tx}" y1="${y - 3}" y2="${y + barH + 3}" stroke="${COLORS.target}" stroke-width="2.5"/>`,
        );
      }
      const valueX = Math.max(scale(s.ratio), Number.isFinite(s.ratioMax) ? scale(s.ratioMax) : 0) + 6;
      body.push(
        `<text x="${valueX.toFixed(1)}" y="${cy + 4}" font-size="12">${Number.isFinite(s.ratio) ? `${s.ratio.toFixed(2)}×` : 'n/a'}</text>`,
      );
      y += barH + gap;
    }
    y += groupGap - gap;
  }
  const height = y + 30;
  const width = labelW + plotW + right;
  const axis: string[] = [];
  for (let t = 0; t <= maxRatio + 1e-9; t += maxRatio > 2.5 ? 0.5 : 0.25) {
    const tx = scale(t).toFixed(1);
    axis.push(
      `<line x1="${tx}" x2="${tx}" y1="${top - 4}" y2="${y - groupGap + 4}" stroke="#e3e6ea" stroke-width="1"/>`,
      `<text x="${tx}" y="${top - 10}" text-anchor="middle" font-size="11" fill="#555">${t.toFixed(2)}×</text>`,
    );
  }
  const one = scale(1).toFixed(1);
  axis.push(
    `<line x1="${one}" x2="${one}" y1="${top - 4}" y2="${y - groupGap + 4}" stroke="#333" stroke-dasharray="4 3" stroke-width="1.2"/>`,
  );
  const legendY = height - 12;
  const legend = [
    `<rect x="12" y="${legendY - 10}" width="12" height="12" fill="${COLORS.latchkey}"/>`,
    `<text x="30" y="${legendY}" font-size="12">latchkey</text>`,
    `<rect x="100" y="${legendY - 10}" width="12" height="12" fill="${COLORS.peer}"/>`,
    `<text x="118" y="${legendY}" font-size="12">peers</text>`,
    `<line x1="175" x2="175" y1="${legendY - 11}" y2="${legendY + 2}" stroke="${COLORS.target}" stroke-width="2.5"/>`,
    `<text x="182" y="${legendY}" font-size="12">target</text>`,
    `<line x1="240" x2="262" y1="${legendY - 4}" y2="${legendY - 4}" stroke="#333" stroke-dasharray="4 3"/>`,
    `<text x="268" y="${legendY}" font-size="12">baseline = Koa + one GET (1.00×); whiskers: min–max over rounds</text>`,
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" role="img">`,
    `<title>${esc(TITLE)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${esc(TITLE)}</text>`,
    ...axis,
    ...body,
    ...legend,
    '</svg>',
    '',
  ].join('\n');
}
