/** The page's side of the HTTP API: its settings, and the calls it makes. */
import { SignInExpired } from './auth.js'

/**
 * The settings served next to the page as `config.json`: the local runner
 * writes them, and a deployment uploads them beside the bundle, so the page
 * names no host of its own.
 */
export async function loadConfig(url = 'config.json') {
  const response = await fetch(url, { cache: 'no-store' })
  if (!response.ok) {
    throw new Error(`${url}: HTTP ${response.status}`)
  }
  const config = await response.json()
  if (typeof config.apiUrl !== 'string' || !config.apiUrl) {
    throw new Error(`${url} has no apiUrl, e.g. {"apiUrl": "https://api.example.com"}`)
  }
  const auth = config.auth
  if (!auth || !auth.authorizeUrl || !auth.tokenUrl || !auth.clientId) {
    throw new Error(
      `This page cannot sign in: ${url} has no auth {authorizeUrl, tokenUrl, logoutUrl?, clientId, scopes} (a stack with a Cognito user pool has them)`,
    )
  }
  return {
    apiUrl: config.apiUrl.replace(/\/+$/, ''),
    playbackUrl: config.playbackUrl || '',
    maxUploadBytes: config.maxUploadBytes || null,
    auth: { scopes: ['openid', 'email', 'profile'], ...auth },
  }
}

class ApiError extends Error {
  constructor(status, message) {
    super(message)
    this.name = 'ApiError'
    this.status = status
  }
}

export class Api {
  /** `auth`: the signed-in user's tokens (auth.js `Auth`). */
  constructor(baseUrl, auth) {
    this.baseUrl = baseUrl
    this.auth = auth
  }

  /**
   * Signs one S3 request of `@uppy/aws-s3` 6 (`{method, key, uploadId?,
   * partNumber?, contentType?}`). For PutObject and CreateMultipartUpload the
   * answer's `key` is the server's, and Uppy keeps it for the later parts.
   */
  sign(request) {
    return this.#call('POST', '/s3/sign', request)
  }

  /** One page of the caller's videos, newest first: `{videos, nextCursor}`. */
  videos({ limit, cursor } = {}) {
    const query = new URLSearchParams()
    if (limit) query.set('limit', String(limit))
    if (cursor) query.set('cursor', cursor)
    const search = query.size ? `?${query}` : ''
    return this.#call('GET', `/videos${search}`)
  }

  video(id) {
    return this.#call('GET', `/videos/${encodeURIComponent(id)}`)
  }

  rename(id, title) {
    return this.#call('PATCH', `/videos/${encodeURIComponent(id)}`, { title })
  }

  remove(id) {
    return this.#call('DELETE', `/videos/${encodeURIComponent(id)}`)
  }

  async #call(method, path, body, refreshed = false) {
    const headers = { authorization: `Bearer ${await this.auth.accessToken()}` }
    if (body !== undefined) {
      headers['content-type'] = 'application/json'
    }
    const response = await fetch(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (response.status === 401) {
      // Refused before its expiry (revoked, or a clock ahead of ours): once
      // more with fresh tokens, and then the user must sign in again.
      if (refreshed) {
        throw new SignInExpired()
      }
      await this.auth.refresh()
      return this.#call(method, path, body, true)
    }
    const payload = await response.json().catch(() => ({}))
    if (!response.ok) {
      throw new ApiError(response.status, payload.message || `${method} ${path}: HTTP ${response.status}`)
    }
    return payload
  }
}

/** The video ID in a server-made upload key, `uploads/{owner}/{videoId}/{filename}` (vod/keys.py). */
export function videoIdFromKey(key) {
  const [prefix, owner, videoId, filename] = key.split('/')
  if (prefix !== 'uploads' || !owner || !videoId || !filename) {
    throw new Error(`${key} is not an upload key like uploads/{owner}/{videoId}/{filename}`)
  }
  return videoId
}

/**
 * Where to fetch a record's URL from. Records carry absolute URLs when the
 * API knows the CDN's address and bare paths when it does not; a path is then
 * relative to `config.playbackUrl`, or to the page itself behind a CDN.
 */
export function resolvePlayback(url, playbackBase) {
  const base = playbackBase ? playbackBase.replace(/\/*$/, '/') : document.baseURI
  return new URL(url, base).href
}
