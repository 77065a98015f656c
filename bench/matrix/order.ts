/**
 * The order in which alternated servers are measured, round by round. A server measured right after
 * another runs on caches and cores that one has just used: by hand (three servers of the spin sweep,
 * 1 s windows), each ran 4-10% slower right after the pool server than after the inline one or
 * itself (bench/README.md, run 36). Starting each round with the next server in turn puts each
 * server first equally often, but of three it puts one right after the same other one in two rounds
 * of three. For three servers these six rounds (every order of the three once) put each one right
 * after each other one equally often, the rounds' boundaries included, and never right after
 * itself, and each one in each place of a round twice. For any other count, the rounds rotate.
 */
const BALANCED_THREE: ReadonlyArray<readonly number[]> = [
  [0, 1, 2], [0, 2, 1], [2, 1, 0], [1, 0, 2], [1, 2, 0], [2, 0, 1]
]

/** What a run records of the order its rounds used: absent from runs before roundOrder ('rotated'). */
export type RoundOrder = 'balanced' | 'rotated'

/** How roundOrder orders the rounds of `count` servers, as a run records it. */
export function orderOf (count: number): RoundOrder {
  return count === 3 ? 'balanced' : 'rotated'
}

/** The servers (indexes of `count`) in the order round `round` measures them. */
export function roundOrder (count: number, round: number): number[] {
  if (orderOf(count) === 'balanced') return [...BALANCED_THREE[round % BALANCED_THREE.length] as number[]]
  return Array.from({ length: count }, (_, k) => (round + k) % count)
}

/** The report's sentence on how a run ordered its rounds. */
export function describeOrder (order: RoundOrder | undefined): string {
  return order === 'balanced'
    ? 'The rounds take the six orders of the three servers in turn, so that each is first, and right after each other one, equally often.'
    : 'Each round starts with the next server in turn.'
}
