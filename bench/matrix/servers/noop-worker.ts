/** Raw Piscina's reference task: nothing, so that what is timed is the crossing to a thread and back. */
export default function noop (x: number): number {
  return x
}
