/**
 * Sign-in with the OAuth 2.0 authorization code grant and PKCE (S256), one
 * code path for Cognito's hosted UI and the local run's issuer: tokens live
 * in sessionStorage, are refreshed before they expire and after a 401, and
 * sign-out goes through the logout endpoint.
 */

const TOKENS = 'vod.tokens'
const PENDING = 'vod.signIn'
/** Refresh this long before the access token expires, so that a request
 * that starts just before the expiry does not arrive just after it. */
const REFRESH_EARLY_MS = 60_000

export class SignInExpired extends Error {
  constructor() {
    super('Your sign-in expired: sign in again')
    this.name = 'SignInExpired'
  }
}

/** An OAuth error answer of the token endpoint (RFC 6749 5.2). */
class GrantRefused extends Error {}

function base64Url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '')
}

const randomText = (size) => base64Url(crypto.getRandomValues(new Uint8Array(size)))

async function s256(text) {
  return base64Url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)))
}

function claims(jwt) {
  const payload = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
  return JSON.parse(atob(payload))
}

export class Auth {
  #tokens
  #refreshing = null
  #listeners = []

  /** `settings`: config.json's `auth`, `{authorizeUrl, tokenUrl, logoutUrl?, clientId, scopes}`. */
  constructor(settings) {
    this.settings = settings
    // Where the sign-in sends the browser back: this page, as registered
    // among the app client's callback and logout URLs.
    this.pageUrl = location.origin + location.pathname
    this.#tokens = JSON.parse(sessionStorage.getItem(TOKENS) || 'null')
  }

  get signedIn() {
    return this.#tokens !== null
  }

  /** Who is signed in, in words: the ID token's email or user name. */
  get user() {
    const id = this.#tokens && claims(this.#tokens.id)
    return id ? id.email || id['cognito:username'] || id.sub : ''
  }

  /** Calls `listener()` whenever the user signs in or is signed out. */
  onChange(listener) {
    this.#listeners.push(listener)
  }

  /** Goes to the authorize endpoint; the page comes back with a code. */
  async signIn() {
    const verifier = randomText(48)
    const state = randomText(16)
    sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }))
    const url = new URL(this.settings.authorizeUrl)
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: this.settings.clientId,
      redirect_uri: this.pageUrl,
      scope: this.settings.scopes.join(' '),
      state,
      code_challenge: await s256(verifier),
      code_challenge_method: 'S256',
    })
    location.assign(url)
  }

  /**
   * Finishes a sign-in when this page load is the way back from the
   * authorize endpoint: exchanges the code, with the verifier, for tokens.
   * The code and state leave the address bar and history either way.
   */
  async completeSignIn() {
    const answer = new URLSearchParams(location.search)
    if (!answer.has('code') && !answer.has('error')) {
      return
    }
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null')
    sessionStorage.removeItem(PENDING)
    history.replaceState(null, '', this.pageUrl + location.hash)
    if (answer.has('error')) {
      throw new Error(`Sign-in failed: ${answer.get('error_description') || answer.get('error')}`)
    }
    if (!pending || pending.state !== answer.get('state')) {
      throw new Error('Sign-in failed: this answer is not for a sign-in started here; sign in again')
    }
    this.#keep(
      await this.#grant({
        grant_type: 'authorization_code',
        code: answer.get('code'),
        redirect_uri: this.pageUrl,
        code_verifier: pending.verifier,
      }),
    )
  }

  /** A current access token, refreshed first when it is about to expire. */
  async accessToken() {
    if (!this.#tokens) {
      throw new SignInExpired()
    }
    if (Date.now() > this.#tokens.expiresAt - REFRESH_EARLY_MS) {
      await this.refresh()
    }
    return this.#tokens.access
  }

  /** New tokens for the refresh token: one request however many callers
   * ask at once. A refused refresh token signs the user out. */
  refresh() {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = null
    })
    return this.#refreshing
  }

  async #refresh() {
    const refreshToken = this.#tokens?.refresh
    if (!refreshToken) {
      throw new SignInExpired()
    }
    try {
      // Cognito answers a refresh without a new refresh token.
      this.#keep({
        refresh_token: refreshToken,
        ...(await this.#grant({ grant_type: 'refresh_token', refresh_token: refreshToken })),
      })
    } catch (error) {
      if (error instanceof GrantRefused) {
        this.#forget()
        throw new SignInExpired()
      }
      throw error
    }
  }

  /** Forgets the tokens, then ends the hosted UI's session too. */
  signOut() {
    this.#forget()
    if (!this.settings.logoutUrl) {
      return
    }
    const url = new URL(this.settings.logoutUrl)
    url.search = new URLSearchParams({ client_id: this.settings.clientId, logout_uri: this.pageUrl })
    location.assign(url)
  }

  async #grant(fields) {
    const response = await fetch(this.settings.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: this.settings.clientId, ...fields }),
    })
    const answer = await response.json().catch(() => ({}))
    if (response.status === 400 || response.status === 401) {
      throw new GrantRefused(answer.error_description || answer.error || `HTTP ${response.status}`)
    }
    if (!response.ok) {
      throw new Error(`The sign-in service answered HTTP ${response.status}; try again`)
    }
    return answer
  }

  #keep(answer) {
    this.#tokens = {
      id: answer.id_token,
      access: answer.access_token,
      refresh: answer.refresh_token,
      expiresAt: Date.now() + answer.expires_in * 1000,
    }
    sessionStorage.setItem(TOKENS, JSON.stringify(this.#tokens))
    this.#listeners.forEach((listener) => listener())
  }

  #forget() {
    this.#tokens = null
    sessionStorage.removeItem(TOKENS)
    this.#listeners.forEach((listener) => listener())
  }
}

/** The account bar in `element`: who is signed in and a sign-out button,
 * or a sign-in button. */
export function showAccount(element, auth) {
  const render = () => {
    const button = document.createElement('button')
    button.type = 'button'
    const status = document.createElement('span')
    if (auth.signedIn) {
      status.textContent = `Signed in as ${auth.user}`
      button.textContent = 'Sign out'
      button.addEventListener('click', () => auth.signOut())
    } else {
      status.textContent = 'Sign in to upload and see your videos.'
      button.textContent = 'Sign in'
      button.addEventListener('click', () => auth.signIn())
    }
    element.replaceChildren(status, ' ', button)
  }
  auth.onChange(render)
  render()
}
