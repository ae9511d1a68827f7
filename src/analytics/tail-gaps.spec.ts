import { idGaps, splitGap } from './tail-processor.service';

describe('ledger id gaps', () => {
  it('finds the ranges of ids without a row between the watermark and the rows', () => {
    expect(idGaps(10, [11, 12, 13])).toEqual([]);
    expect(idGaps(10, [])).toEqual([]);
    expect(idGaps(10, [14, 15, 20])).toEqual([
      { from: 11, to: 13 },
      { from: 16, to: 19 },
    ]);
  });

  it('keeps what is left of a range once ids found in it are taken out', () => {
    expect(splitGap({ from: 11, to: 13 }, [12])).toEqual([
      { from: 11, to: 11 },
      { from: 13, to: 13 },
    ]);
    expect(splitGap({ from: 11, to: 13 }, [13, 11, 12])).toEqual([]);
    expect(splitGap({ from: 11, to: 20 }, [11, 15])).toEqual([
      { from: 12, to: 14 },
      { from: 16, to: 20 },
    ]);
    expect(splitGap({ from: 5, to: 5 }, [5])).toEqual([]);
  });
});
