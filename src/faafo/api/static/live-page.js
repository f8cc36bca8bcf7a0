// Pages with nothing of their own to script (the "no such fractal" page): live counters only.

import { startLive } from "./live.js";

startLive();
