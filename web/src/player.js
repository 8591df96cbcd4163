/** The page's one player: hls.js with quality and caption menus, and scrub previews from the sprite's WebVTT. */
import Hls from 'hls.js'

/** The hls.js level index that lets it choose the rendition itself. */
const AUTO = -1

/**
 * A labelled `<select>` over some tracks (renditions, captions): each
 * `choice` is `{value, label}`, and `onChange` gets the chosen value as a
 * number. Every menu of the player is one of these, so that a new kind of
 * track needs no new markup.
 */
export function trackMenu({ name, label, choices, selected, onChange }) {
  const wrapper = document.createElement('label')
  wrapper.className = `player-menu player-${name}`
  wrapper.append(`${label} `)
  const select = document.createElement('select')
  for (const choice of choices) {
    select.add(new Option(choice.label, String(choice.value), false, choice.value === selected))
  }
  select.addEventListener('change', () => onChange(Number(select.value)))
  wrapper.append(select)
  return wrapper
}

/** `hh:mm:ss.ttt` or `mm:ss.ttt` as seconds. */
function vttSeconds(stamp) {
  return stamp.split(':').reduce((total, part) => total * 60 + Number(part), 0)
}

/**
 * The cues of a thumbnails WebVTT (`sprite.jpg#xywh=x,y,w,h` per time
 * range, containers/ffmpeg/worker/thumbnails.py) as `{start, end, image, x,
 * y, w, h}`, with each image resolved against the WebVTT's own URL.
 */
function parseThumbnails(text, vttUrl) {
  const cues = []
  for (const block of text.replace(/\r/g, '').split(/\n{2,}/)) {
    const lines = block.split('\n').filter((line) => line.trim())
    const timing = lines.findIndex((line) => line.includes('-->'))
    if (timing < 0 || !lines[timing + 1]) continue
    const [start, end] = lines[timing].split('-->').map((side) => vttSeconds(side.trim().split(/\s+/)[0]))
    const target = new URL(lines[timing + 1].trim(), vttUrl)
    const area = /^xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(target.hash.slice(1))
    if (!area) continue
    const [x, y, w, h] = area.slice(1).map(Number)
    target.hash = ''
    cues.push({ start, end, image: target.href, x, y, w, h })
  }
  return cues
}

/**
 * What a user pastes into their own page to play a video: a `<video>` that
 * Safari plays natively and every other browser through hls.js from a CDN.
 * The playback host answers CORS only for the stack's `allowedOrigins`, so
 * the embedding site's origin must be one of them (README, "The web app").
 */
export function embedSnippet({ id, playbackUrl, posterUrl }) {
  const element = `vod-${id}`
  const poster = posterUrl ? ` poster="${posterUrl}"` : ''
  return `<video id="${element}" controls playsinline${poster} style="width:100%;max-width:960px;aspect-ratio:16/9"></video>
<script src="https://cdn.jsdelivr.net/npm/hls.js@${Hls.version}/dist/hls.min.js"></script>
<script>
  (() => {
    const video = document.getElementById('${element}')
    const source = '${playbackUrl}'
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls({ capLevelToPlayerSize: true })
      hls.loadSource(source)
      hls.attachMedia(video)
    } else {
      video.src = source
    }
  })()
</script>
`
}

/** `m:ss`, or `h:mm:ss` from an hour up. */
export function clockTime(seconds) {
  const whole = Math.max(0, Math.floor(seconds))
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60), whole % 60]
  const mmss = `${String(m).padStart(h ? 2 : 1, '0')}:${String(s).padStart(2, '0')}`
  return h ? `${h}:${mmss}` : mmss
}

/** The one player on the page: opening a video closes the last one. */
export class Player {
  constructor(section, { onClose } = {}) {
    this.section = section
    this.video = section.querySelector('.player-video')
    this.seek = section.querySelector('.player-seek')
    this.thumb = section.querySelector('.player-thumb')
    this.menus = section.querySelector('.player-menus')
    this.error = section.querySelector('.player-error')
    this.onClose = onClose
    this.thumbnails = []
    section.querySelector('.player-close').addEventListener('click', () => this.close())
    this.#wireSeekBar()
  }

  /** The video now open, or null. */
  get videoId() {
    return this.section.hidden ? null : this.section.dataset.videoId
  }

  /**
   * Opens `source` (an HLS master playlist) and starts it, since the user
   * asked to play: hls.js follows a playlist that still grows, so a video
   * encoded in chunks plays from its start before it is READY.
   */
  open({ id, title, source, poster, thumbnails }) {
    this.close()
    this.section.dataset.videoId = id
    this.section.querySelector('.player-title').textContent = title
    this.video.poster = poster || ''
    this.#fail('')
    this.section.hidden = false
    if (Hls.isSupported()) {
      this.#attachHls(source)
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.video.src = source
    } else {
      this.#fail('This browser cannot play HLS video.')
      return
    }
    if (thumbnails) {
      this.#loadThumbnails(thumbnails, id)
    }
    this.section.scrollIntoView({ block: 'nearest' })
    this.video.play().catch(() => {
      // Refused without a user gesture: the controls stay there to start it.
    })
  }

  close() {
    const wasOpen = !this.section.hidden
    this.hls?.destroy()
    this.hls = null
    this.video.pause()
    this.video.removeAttribute('src')
    this.video.load()
    this.menus.replaceChildren()
    this.thumbnails = []
    this.thumb.hidden = true
    this.seek.value = '0'
    this.seek.max = '0'
    this.section.hidden = true
    delete this.section.dataset.videoId
    if (wasOpen) this.onClose?.()
  }

  /** Shows `message` under the player, or clears the last one when there is none. */
  #fail(message) {
    this.error.textContent = message
    this.error.hidden = !message
  }

  #attachHls(source) {
    // Auto picks no rendition larger than the player shows.
    const hls = new Hls({ capLevelToPlayerSize: true, startPosition: 0 })
    this.hls = hls
    hls.on(Hls.Events.MANIFEST_PARSED, () => this.#showQualityMenu())
    hls.on(Hls.Events.LEVEL_SWITCHED, () => this.#labelAuto())
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => this.#showCaptionsMenu())
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) this.#fail(`Playback failed: ${data.type} ${data.details}`)
    })
    hls.loadSource(source)
    hls.attachMedia(this.video)
  }

  #showQualityMenu() {
    const levels = this.hls.levels
      .map((level, index) => ({ index, height: Math.min(level.width, level.height), bitrate: level.bitrate }))
      .sort((a, b) => b.height - a.height)
    const menu = trackMenu({
      name: 'quality',
      label: 'Quality',
      choices: [
        { value: AUTO, label: 'Auto' },
        ...levels.map((level) => ({ value: level.index, label: `${level.height}p` })),
      ],
      selected: AUTO,
      onChange: (index) => {
        this.hls.currentLevel = index
      },
    })
    this.menus.querySelector('.player-quality')?.remove()
    this.menus.prepend(menu)
  }

  /** "Auto (360p)": which rendition Auto plays now. */
  #labelAuto() {
    const auto = this.menus.querySelector(`.player-quality option[value="${AUTO}"]`)
    const level = this.hls.levels[this.hls.currentLevel]
    if (auto && level) {
      auto.textContent = this.hls.autoLevelEnabled ? `Auto (${Math.min(level.width, level.height)}p)` : 'Auto'
    }
  }

  #showCaptionsMenu() {
    this.menus.querySelector('.player-captions')?.remove()
    const tracks = this.hls.subtitleTracks
    if (!tracks.length) return
    this.menus.append(
      trackMenu({
        name: 'captions',
        label: 'Captions',
        choices: [
          { value: AUTO, label: 'Captions off' },
          ...tracks.map((track, index) => ({ value: index, label: track.name || track.lang || `Track ${index + 1}` })),
        ],
        selected: this.hls.subtitleTrack,
        onChange: (index) => {
          this.hls.subtitleDisplay = index !== AUTO
          this.hls.subtitleTrack = index
        },
      }),
    )
  }

  async #loadThumbnails(url, id) {
    try {
      const response = await fetch(url)
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      const cues = parseThumbnails(await response.text(), response.url || url)
      if (this.section.dataset.videoId === id) {
        this.thumbnails = cues
      }
    } catch {
      // Scrubbing works on without previews.
    }
  }

  /**
   * The scrub bar under the video: a range input (keyboard and screen reader
   * friendly) that seeks, and shows the sprite's tile for the time under the
   * pointer, or the time chosen by keyboard.
   */
  #wireSeekBar() {
    const { video, seek } = this
    video.addEventListener('durationchange', () => {
      seek.max = Number.isFinite(video.duration) ? String(video.duration) : '0'
    })
    video.addEventListener('timeupdate', () => {
      if (!seek.matches(':active')) seek.value = String(video.currentTime)
      seek.setAttribute('aria-valuetext', `${clockTime(video.currentTime)} of ${clockTime(video.duration || 0)}`)
    })
    seek.addEventListener('input', () => {
      video.currentTime = Number(seek.value)
      this.#preview(Number(seek.value) / Number(seek.max || 1))
    })
    seek.addEventListener('pointermove', (event) => {
      const box = seek.getBoundingClientRect()
      this.#preview((event.clientX - box.left) / box.width)
    })
    seek.addEventListener('pointerleave', () => {
      this.thumb.hidden = true
    })
    seek.addEventListener('blur', () => {
      this.thumb.hidden = true
    })
  }

  /** Shows the tile at `fraction` (0-1) of the video over the scrub bar. */
  #preview(fraction) {
    const duration = this.video.duration
    const at = Math.min(1, Math.max(0, fraction)) * (Number.isFinite(duration) ? duration : 0)
    const cue = this.thumbnails.find((c) => at >= c.start && at < c.end) ?? this.thumbnails.at(-1)
    if (!cue || !duration) {
      this.thumb.hidden = true
      return
    }
    const { thumb, seek } = this
    thumb.style.width = `${cue.w}px`
    thumb.style.height = `${cue.h}px`
    thumb.style.backgroundImage = `url("${cue.image}")`
    thumb.style.backgroundPosition = `-${cue.x}px -${cue.y}px`
    thumb.querySelector('.player-thumb-time').textContent = clockTime(at)
    // Centred on the pointer, but never past either end of the bar.
    const room = seek.clientWidth - cue.w
    thumb.style.left = `${Math.min(room, Math.max(0, fraction * seek.clientWidth - cue.w / 2))}px`
    thumb.hidden = false
  }
}
