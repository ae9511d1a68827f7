import { statementDays } from './statement.service';

const DAY = 86_400_000;
const D = 20_000 * DAY;
const span = (r: { from: Date; to: Date } | null) => (r ? [r.from.getTime() - D, r.to.getTime() - D] : null);

describe('statementDays', () => {
  it('splits a window into whole UTC days and the partial days at both ends, without overlap', () => {
    const { whole, edges } = statementDays(new Date(D + 5), new Date(D + 3 * DAY + 7));
    expect(span(whole)).toEqual([DAY, 3 * DAY]);
    expect(edges.map(span)).toEqual([
      [5, DAY - 1],
      [3 * DAY, 3 * DAY + 7],
    ]);
  });

  it('counts a day as whole when the window ends on its last millisecond, and has no edge on midnight', () => {
    const { whole, edges } = statementDays(new Date(D), new Date(D + 2 * DAY - 1));
    expect(span(whole)).toEqual([0, 2 * DAY]);
    expect(edges).toEqual([]);
  });

  it('reads a window without a whole day from the ledger alone', () => {
    expect(statementDays(new Date(D + 5), new Date(D + DAY + 3))).toEqual({
      whole: null,
      edges: [{ from: new Date(D + 5), to: new Date(D + DAY + 3) }],
    });
    expect(statementDays(new Date(D), new Date(D + DAY - 2)).whole).toBeNull();
    expect(statementDays(new Date(D + 9), new Date(D + 9)).edges).toHaveLength(1);
  });
});
