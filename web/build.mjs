// Builds the page into web/dist, or the directory given as the only argument:
// one script and one stylesheet bundled from the pinned npm packages (no CDN),
// next to index.html.
import { copyFile, mkdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const web = dirname(fileURLToPath(import.meta.url))
const dist = process.argv[2] ? resolve(process.argv[2]) : join(web, 'dist')

await mkdir(dist, { recursive: true })
await build({
  entryPoints: [join(web, 'src', 'main.js')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'iife',
  target: ['es2022'],
  logLevel: 'warning',
})
await copyFile(join(web, 'index.html'), join(dist, 'index.html'))
