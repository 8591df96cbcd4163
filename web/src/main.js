import AwsS3 from '@uppy/aws-s3'
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import Hls from 'hls.js'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import './style.css'
import { Api, loadConfig, resolvePlayback, videoIdFromKey } from './api.js'

const POLL_INTERVAL_MS = 1000
/**
 * A video still being encoded plays once this much of its start is ready:
 * three 6 s segments, the headroom the HLS spec asks before a player joins
 * a growing playlist, so that playback does not catch up with the encoders
 * before the player's next reload of the playlist.
 */
const HEADROOM_SECONDS = 18
/** Statuses a record never leaves (vod/model.py TERMINAL). */
const TERMINAL = new Set(['READY', 'FAILED', 'ABORTED'])

const notice = document.getElementById('notice')

function showNotice(message) {
  notice.textContent = message
  notice.hidden = false
}

/** One uploaded video on the page: its status, transcode progress, and player. */
class VideoCard {
  constructor(title, videoId) {
    const template = document.getElementById('video-card')
    this.element = template.content.firstElementChild.cloneNode(true)
    this.element.dataset.videoId = videoId
    this.#part('title').textContent = title
    document.getElementById('videos').prepend(this.element)
  }

  #part(name) {
    return this.element.querySelector(`.video-${name}`)
  }

  show(record) {
    this.element.dataset.status = record.status
    this.element.dataset.playable = record.playable ? 'true' : 'false'
    this.#part('status').textContent = record.retrying
      ? `${record.status} (retrying)`
      : record.status
    this.#part('progress').value = record.progress ?? 0
    const chunks = record.chunks
    const detail =
      record.status === 'PROCESSING' && chunks ? `, ${chunks.done}/${chunks.total} chunks` : ''
    this.#part('percent').textContent = `${record.progress ?? 0}%${detail}`
    this.fail(record.error)
  }

  /** Shows `message`, or clears the last one when there is none. */
  fail(message) {
    const error = this.#part('error')
    error.textContent = message || ''
    error.hidden = !message
  }

  /** Plays `source` once: hls.js follows a playlist that still grows (a
   * video encoded in chunks plays from its start before it is READY). */
  play(source, poster) {
    if (this.playing) {
      return
    }
    this.playing = true
    const video = this.#part('player')
    if (poster) {
      video.poster = poster
    }
    video.hidden = false
    // Muted, so browsers allow it to start on its own.
    video.autoplay = true
    if (Hls.isSupported()) {
      const hls = new Hls({ startPosition: 0 })
      this.hls = hls
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (data.fatal) {
          this.fail(`Playback failed: ${data.type} ${data.details}`)
        }
      })
      showCaptions(hls, this.#part('captions'))
      hls.loadSource(source)
      hls.attachMedia(video)
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = source
    } else {
      this.fail('This browser cannot play HLS.')
    }
  }
}

/**
 * A captions menu from the text tracks hls.js finds in the master playlist
 * (its SUBTITLES group): "Captions off", then one entry per track.
 */
function showCaptions(hls, menu) {
  hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_event, { subtitleTracks }) => {
    menu.replaceChildren(
      new Option('Captions off', '-1'),
      ...subtitleTracks.map((track, index) => new Option(track.name, String(index))),
    )
    menu.value = String(hls.subtitleTrack)
    menu.hidden = subtitleTracks.length === 0
  })
  menu.addEventListener('change', () => {
    hls.subtitleTrack = Number(menu.value)
  })
}

/** A READY video's caption tracks that are not in its master playlist yet
 * (the captions function publishes them just after READY). */
const captionsPending = (record) =>
  record.status === 'READY' && (record.captions ?? []).some((track) => track.status === 'PENDING')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls the record until it settles; plays it once enough of it is ready. */
async function watch(api, config, card, videoId) {
  for (;;) {
    try {
      const record = await api.video(videoId)
      card.show(record)
      const headroom = Math.min(HEADROOM_SECONDS, record.duration ?? HEADROOM_SECONDS)
      const enough =
        (record.status === 'READY' && !captionsPending(record)) ||
        record.playableUntil >= headroom
      if (record.playable && record.playbackUrl && enough) {
        card.play(
          resolvePlayback(record.playbackUrl, config.playbackUrl),
          record.posterUrl && resolvePlayback(record.posterUrl, config.playbackUrl),
        )
      }
      if (TERMINAL.has(record.status) && !captionsPending(record)) {
        return
      }
    } catch (error) {
      card.fail(error.message)
      // A 4xx (bad token, record gone) will not mend by asking again.
      if (error.status >= 400 && error.status < 500 && error.status !== 429) {
        return
      }
    }
    await sleep(POLL_INTERVAL_MS)
  }
}

function askForToken(api, dashboard) {
  const form = document.getElementById('token-form')
  form.hidden = false
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    api.token = form.elements.token.value.trim()
    form.hidden = true
    dashboard.setOptions({ disabled: false })
  })
}

async function main() {
  const config = await loadConfig()
  const api = new Api(config.apiUrl, config.token)
  const uppy = new Uppy({ restrictions: { allowedFileTypes: ['video/*'] } })
    .use(Dashboard, {
      inline: true,
      target: '#uploader',
      height: 340,
      width: '100%',
      disabled: !api.token,
      note: 'Video files only',
      proudlyDisplayPoweredByUppy: false,
    })
    .use(AwsS3, {
      shouldUseMultipart: true,
      // The server makes the key and keeps only the file name of this one.
      generateObjectKey: (file) => file.name,
      signRequest: (request) => api.sign(request),
    })
  if (!api.token) {
    askForToken(api, uppy.getPlugin('Dashboard'))
  }
  uppy.on('upload-success', (file, response) => {
    const videoId = videoIdFromKey(response.body.key)
    watch(api, config, new VideoCard(file.name, videoId), videoId)
  })
}

main().catch((error) => showNotice(error.message))
