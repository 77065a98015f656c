/**
 * The order in which alternated servers are measured, round by round. A server measured right after
 * another runs on caches and cores that one has just used: by hand (three servers of the spin sweep,
 * 1 s windows), each ran 4-10% slower right after the pool server than after the inline one or
 * itself (bench/README.md, run 36). Starting each round with the next server in turn puts each
 * server first equally often, but of three it puts one right after the same other one in two rounds
 * of three. For three servers these six rounds (every order of the three once) put each one right
 * after each other one equally often, the rounds' boundaries included, and never right after
 * itself, and each one in each place of a round twice. Any other count (a row of the matrix: five
 * models, and the naive server beside them in one row) takes the rounds of a Williams design, a
 * balanced Latin square: round r is 0, 1, n-1, 2, n-2, ... with r added to each (mod n), and for
 * an odd n rounds n to 2n-1 the same reversed. Each server is first in turn, and within the rounds
 * each one comes right after each other one equally often (once in n rounds for an even n, twice
 * in 2n for an odd one); a run of fewer rounds (the matrix's three) still puts a server after
 * different ones rather than always after the same.
 */
const BALANCED_THREE: ReadonlyArray<readonly number[]> = [
  [0, 1, 2], [0, 2, 1], [2, 1, 0], [1, 0, 2], [1, 2, 0], [2, 0, 1]
]

/**
 * What a run records of the order its rounds used: 'rotated' for runs before roundOrder (each
 * round starting with the next server, the same server always after the same other one), 'fixed'
 * for the matrix's cells before they used it (every round in the same order).
 */
export type RoundOrder = 'balanced' | 'williams' | 'rotated' | 'fixed'

/** How roundOrder orders the rounds of `count` servers, as a run records it. */
export function orderOf (count: number): RoundOrder {
  return count === 3 ? 'balanced' : 'williams'
}

/** The servers (indexes of `count`) in the order round `round` measures them. */
export function roundOrder (count: number, round: number): number[] {
  if (orderOf(count) === 'balanced') return [...BALANCED_THREE[round % BALANCED_THREE.length] as number[]]
  // 0, 1, n-1, 2, n-2, ...
  const first = Array.from({ length: count }, (_, j) => j % 2 === 1 ? (j + 1) / 2 : (count - j / 2) % count)
  const r = round % (count % 2 === 0 ? count : 2 * count)
  return (r < count ? first : first.reverse()).map((server) => (server + r) % count)
}

/** The report's sentence on how a run ordered its rounds. */
export function describeOrder (order: RoundOrder | undefined): string {
  switch (order) {
    case 'balanced':
      return 'The rounds take the six orders of the three servers in turn, so that each is first, and right after each other one, equally often.'
    case 'williams':
      return 'The rounds take the servers in the orders of a balanced Latin square, so that each is first in turn and follows a different one from round to round.'
    case 'fixed':
      return 'Every round measures the servers in the same order.'
    default:
      return 'Each round starts with the next server in turn.'
  }
}
