import assert from "node:assert/strict";
import { RUNTIME_FLAGS } from "./runtime_flags.ts";

Deno.test("deno.json's cli and compile tasks use exactly RUNTIME_FLAGS", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  const flags = RUNTIME_FLAGS.join(" ");
  assert.equal(config.tasks.cli, `deno run ${flags} src/cli/main.ts`);
  assert.equal(
    config.tasks.compile,
    `deno compile ${flags} --output dist/thanos-bridge src/cli/main.ts`,
  );
});
