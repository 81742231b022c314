import { delimiter, dirname } from 'node:path';
import { gesturesArchivePath } from './fixtures';

/**
 * The test machine's worker settings, inherited by every CLI and worker process a test starts:
 * the folder of the real archive is a data root, as SWEEPS_DATA_ROOTS would make it on a user's
 * worker (pipelines in tests read the archive through `file:` URLs).
 */
const folder = dirname(gesturesArchivePath);
const roots = (process.env.SWEEPS_DATA_ROOTS ?? '').split(delimiter).filter((r) => r !== '');
if (!roots.includes(folder)) process.env.SWEEPS_DATA_ROOTS = [...roots, folder].join(delimiter);
