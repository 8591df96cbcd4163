/** The caller's videos: pages of cards from `GET /videos`, kept fresh while any is in flight, with their actions. */
import { resolvePlayback } from './api.js'
import { clockTime, embedSnippet } from './player.js'

const PAGE_SIZE = 12
const POLL_INTERVAL_MS = 1000
/**
 * Polling slows down, doubling up to this, while nothing in flight changes:
 * an upload left open in another tab stays UPLOADING until it expires.
 */
const MAX_POLL_INTERVAL_MS = 30_000
/**
 * A video still being encoded plays once this much of its start is ready:
 * three 6 s segments, the headroom the HLS spec asks before a player joins
 * a growing playlist, so that playback does not catch up with the encoders
 * before the player's next reload of the playlist.
 */
const HEADROOM_SECONDS = 18
/** Statuses a record never leaves (vod/model.py TERMINAL). */
const TERMINAL = new Set(['READY', 'FAILED', 'ABORTED'])

/** Says `message` to screen readers through the page's polite live region. */
function announce(message) {
  const region = document.getElementById('announcer')
  // A repeated message is only read again if the text changes.
  region.textContent = region.textContent === message ? `${message}\u00a0` : message
}

/** The status badge's words for a record. */
function statusLabel(record) {
  switch (record.status) {
    case 'UPLOADING':
      return 'Uploading'
    case 'UPLOADED':
    case 'QUEUED':
      return 'Waiting to transcode'
    case 'PROCESSING':
      return `Processing ${record.progress ?? 0}%${record.retrying ? ' (retrying)' : ''}`
    case 'READY':
      return 'Ready'
    case 'FAILED':
      return 'Failed'
    case 'ABORTED':
      return 'Upload cancelled'
    default:
      return record.status
  }
}

/** A READY video's caption tracks that are not in its master playlist yet
 * (the captions function publishes them just after READY). */
const captionsPending = (record) =>
  record.status === 'READY' && (record.captions ?? []).some((track) => track.status === 'PENDING')

/** Whether a record can still change on its own: polled until it cannot
 * (a Transcribe job still making automatic captions included). */
const inFlight = (record) =>
  !TERMINAL.has(record.status) || captionsPending(record) || record.autoCaptions?.status === 'IN_PROGRESS'

/** What became of the automatic captions, in words; '' when there is
 * nothing to say (off, or added: the track is in the captions menu). */
function autoCaptionsNote(record) {
  const auto = record.autoCaptions
  if (auto?.status === 'IN_PROGRESS') return 'Automatic captions are being made.'
  if (auto?.status === 'FAILED' || auto?.status === 'NONE') {
    return `No automatic captions: ${auto.reason}.`
  }
  return ''
}

/** Whether enough of the video is out to start playing it: hls.js reads the
 * master playlist once, so a READY video waits for its captions. */
function canPlay(record) {
  const headroom = Math.min(HEADROOM_SECONDS, record.duration ?? HEADROOM_SECONDS)
  const ready = record.status === 'READY' && !captionsPending(record)
  return Boolean(record.playable && record.playbackUrl && (ready || record.playableUntil >= headroom))
}

/** One video's card: poster, facts, status and the buttons for what it allows. */
class Card {
  constructor(record) {
    const template = document.getElementById('video-card')
    this.element = template.content.firstElementChild.cloneNode(true)
    this.element.dataset.videoId = record.id
    this.record = null
  }

  part(name) {
    return this.element.querySelector(`.video-${name}`)
  }

  show(record, playbackBase) {
    this.record = record
    const { element } = this
    element.dataset.status = record.status
    element.dataset.playable = canPlay(record) ? 'true' : 'false'
    this.part('title').textContent = record.title || record.filename
    const poster = this.part('poster')
    if (record.posterUrl) {
      const url = resolvePlayback(record.posterUrl, playbackBase)
      if (poster.getAttribute('src') !== url) poster.src = url
    }
    poster.hidden = !record.posterUrl
    this.part('duration').textContent = record.duration ? clockTime(record.duration) : ''
    const date = this.part('date')
    date.dateTime = record.createdAt
    date.textContent = new Date(record.createdAt).toLocaleString(undefined, {
      dateStyle: 'medium',
      timeStyle: 'short',
    })
    this.part('status').textContent = statusLabel(record)
    const progress = this.part('progress')
    progress.hidden = record.status !== 'PROCESSING'
    progress.value = record.progress ?? 0
    const failed = record.status === 'FAILED'
    // The API has no retry: a failed video is uploaded again.
    const reason = (record.error || 'the transcode failed').replace(/\.?$/, '.')
    this.fail(failed ? `${reason} Upload the file again to retry.` : '')
    const note = this.part('note')
    note.textContent = autoCaptionsNote(record)
    note.hidden = !note.textContent
    const allowed = {
      play: canPlay(record),
      'copy-url': Boolean(record.playbackUrl) && record.status === 'READY',
      'copy-embed': Boolean(record.playbackUrl) && record.status === 'READY',
      // The API refuses (409) while a transcode could still write outputs.
      delete: record.status !== 'PROCESSING',
      rename: true,
    }
    const name = record.title || record.filename
    for (const button of element.querySelectorAll('[data-action]')) {
      button.hidden = !allowed[button.dataset.action]
      button.setAttribute('aria-label', `${button.textContent} ${name}`)
    }
  }

  /** Shows `message` in the card, or clears it when there is none. */
  fail(message) {
    const error = this.part('error')
    error.textContent = message || ''
    error.hidden = !message
  }
}

/** The library of the caller's videos, mounted on the page's `#library`. */
export class Library {
  constructor({ api, config, player }) {
    this.api = api
    this.playbackBase = config.playbackUrl
    this.player = player
    this.cards = new Map()
    this.list = document.getElementById('videos')
    this.more = document.getElementById('load-more')
    this.empty = document.getElementById('library-empty')
    this.cursor = null
    this.polling = false
    this.pollDelay = POLL_INTERVAL_MS
    this.wake = null
    this.more.addEventListener('click', () => this.loadPage())
    this.list.addEventListener('click', (event) => {
      const button = event.target.closest('[data-action]')
      if (button) this.#act(button.dataset.action, button.closest('.video').dataset.videoId)
    })
  }

  /** Starts over from the newest video. */
  async load() {
    this.cursor = null
    this.cards.clear()
    this.list.replaceChildren()
    await this.loadPage()
  }

  /** Appends the next page (older videos). */
  async loadPage() {
    this.more.disabled = true
    try {
      const page = await this.api.videos({ limit: PAGE_SIZE, cursor: this.cursor })
      for (const record of page.videos) {
        if (!this.cards.has(record.id)) this.#place(record, 'append')
      }
      this.cursor = page.nextCursor
    } catch (error) {
      announce(`Could not load your videos: ${error.message}`)
      throw error
    } finally {
      this.more.disabled = false
      this.more.hidden = !this.cursor
      this.#showEmpty()
    }
  }

  /** Puts a new upload at the top and follows it. */
  async track(videoId) {
    const record = await this.api.video(videoId)
    const card = this.cards.get(videoId)
    if (card) {
      this.#update(card, record)
      this.#poll()
    } else {
      this.#place(record, 'prepend')
    }
  }

  #place(record, where) {
    const card = new Card(record)
    this.cards.set(record.id, card)
    card.show(record, this.playbackBase)
    this.list[where](card.element)
    this.#showEmpty()
    if (inFlight(record)) this.#poll()
  }

  /** Shows `record` on `card`; whether it changed since the last look. */
  #update(card, record) {
    const before = card.record
    card.show(record, this.playbackBase)
    if (before.status !== record.status) {
      const name = record.title || record.filename
      const words = record.status === 'FAILED' ? `failed: ${record.error}` : statusLabel(record).toLowerCase()
      announce(`${name}: ${words}`)
    }
    return before.updatedAt !== record.updatedAt
  }

  #remove(videoId) {
    this.cards.get(videoId)?.element.remove()
    this.cards.delete(videoId)
    if (this.player.videoId === videoId) this.player.close()
    this.#showEmpty()
  }

  #showEmpty() {
    this.empty.hidden = this.cards.size > 0
  }

  /**
   * Refreshes every card in flight until none is, then stops; called again
   * while it runs, it goes back to the fastest pace at once.
   */
  async #poll() {
    this.pollDelay = POLL_INTERVAL_MS
    if (this.polling) {
      this.wake?.()
      return
    }
    this.polling = true
    this.list.dataset.polling = 'true'
    try {
      for (;;) {
        const changing = [...this.cards.values()].filter((card) => inFlight(card.record))
        if (!changing.length) return
        await this.#nap(this.pollDelay)
        const changed = await Promise.all(changing.map((card) => this.#refresh(card)))
        this.pollDelay = changed.some(Boolean)
          ? POLL_INTERVAL_MS
          : Math.min(MAX_POLL_INTERVAL_MS, this.pollDelay * 2)
      }
    } finally {
      this.polling = false
      this.list.dataset.polling = 'false'
    }
  }

  /** Waits `ms`, or less if `#poll` is called meanwhile. */
  #nap(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  /** Whether the card's record changed. */
  async #refresh(card) {
    const id = card.record.id
    try {
      return this.#update(card, await this.api.video(id))
    } catch (error) {
      if (error.status === 404) {
        // Deleted elsewhere.
        this.#remove(id)
        return true
      }
      card.fail(error.message)
      return false
    }
  }

  async #act(action, videoId) {
    const card = this.cards.get(videoId)
    const record = card.record
    const name = record.title || record.filename
    try {
      switch (action) {
        case 'play':
          this.player.open({
            id: record.id,
            title: name,
            source: resolvePlayback(record.playbackUrl, this.playbackBase),
            poster: record.posterUrl && resolvePlayback(record.posterUrl, this.playbackBase),
            thumbnails: record.thumbnailsUrl && resolvePlayback(record.thumbnailsUrl, this.playbackBase),
          })
          break
        case 'rename': {
          const title = await askTitle(name)
          if (title && title !== name) {
            card.show(await this.api.rename(videoId, title), this.playbackBase)
            announce(`Renamed to ${title}`)
          }
          break
        }
        case 'delete':
          if (await confirmDelete(name)) {
            await this.api.remove(videoId)
            this.#remove(videoId)
            announce(`Deleted ${name}`)
          }
          break
        case 'copy-url':
          await navigator.clipboard.writeText(resolvePlayback(record.playbackUrl, this.playbackBase))
          announce(`Copied the playback URL of ${name}`)
          break
        case 'copy-embed':
          await navigator.clipboard.writeText(
            embedSnippet({
              id: record.id,
              playbackUrl: resolvePlayback(record.playbackUrl, this.playbackBase),
              posterUrl: record.posterUrl && resolvePlayback(record.posterUrl, this.playbackBase),
            }),
          )
          announce(`Copied the embed code of ${name}`)
          break
      }
    } catch (error) {
      card.fail(error.message)
      announce(`${name}: ${error.message}`)
    }
  }
}

/** Opens `dialog` and resolves with the button value it closed with. */
function ask(dialog) {
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue), { once: true })
    dialog.returnValue = ''
    dialog.showModal()
  })
}

async function askTitle(current) {
  const dialog = document.getElementById('rename-dialog')
  const input = dialog.querySelector('input[name="title"]')
  input.value = current
  const answer = await ask(dialog)
  return answer === 'save' ? input.value.trim() : ''
}

async function confirmDelete(name) {
  const dialog = document.getElementById('delete-dialog')
  dialog.querySelector('.delete-name').textContent = name
  return (await ask(dialog)) === 'delete'
}
