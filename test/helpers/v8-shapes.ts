import { setFlagsFromString } from 'node:v8';

/**
 * Whether V8 gives `a` and `b` one hidden class (map): objects of one class
 * whose properties were added differently do not share one, and each of
 * Node's functions that handles both then handles one more shape.
 */
export const haveSameShape: (a: object, b: object) => boolean = (() => {
  setFlagsFromString('--allow-natives-syntax');
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- V8's natives syntax exists only in code compiled after the flag.
  return new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
})();
