// The workflows the worker registers. Deterministic orchestration only: no I/O, no clocks, and
// activity code is imported as types only.
export { sweepWorkflow } from './sweep';
export { searchWorkflow } from './search-rounds';
export { trialWorkflow } from './trial';
