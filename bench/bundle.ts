/**
 * Bundles bench/client.ts (with lib/) into one plain .mjs file with esbuild, once per run, so each
 * fresh client process starts in a fraction of the time tsx takes to load TypeScript.
 * Packages stay outside the bundle, imported by absolute path, so they are the very files tsx would load.
 */
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build, type Plugin } from 'esbuild'

const CLIENT_SOURCE = fileURLToPath(new URL('client.ts', import.meta.url))
const requireHere = createRequire(import.meta.url)

/** Marks every bare package import external, rewritten to the absolute path of the file it resolves to. */
const packagesByAbsolutePath: Plugin = {
  name: 'packages-by-absolute-path',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true }
      return { path: requireHere.resolve(args.path), external: true }
    })
  },
}

/** Writes the bundled client into `dir` and returns its path. */
export async function bundleClient(dir: string): Promise<string> {
  const outfile = join(dir, 'client.mjs')
  await build({
    entryPoints: [CLIENT_SOURCE],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    plugins: [packagesByAbsolutePath],
    logLevel: 'warning',
  })
  return outfile
}
