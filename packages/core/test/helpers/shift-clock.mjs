// Preloaded into a CLI process by a test: Date.now runs SHIFT_CLOCK_MS ahead of the real clock (a
// machine whose clock is off), which `latchkey doctor` must notice against Redis's TIME.
const offset = Number(process.env.SHIFT_CLOCK_MS ?? 0);
const realNow = Date.now;
Date.now = () => realNow() + offset;
