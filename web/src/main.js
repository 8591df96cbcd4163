/** The page's composition root: its settings, sign-in, the API client, the library with its player, and the uploader. */
import './style.css'
import { Api, loadConfig } from './api.js'
import { Auth, showAccount } from './auth.js'
import { Library } from './library.js'
import { Player } from './player.js'
import { startUploads } from './uploads.js'

const notice = document.getElementById('notice')

function showNotice(message) {
  notice.textContent = message
  notice.hidden = false
}

async function main() {
  const config = await loadConfig()
  const auth = new Auth(config.auth)
  try {
    await auth.completeSignIn()
  } catch (error) {
    showNotice(error.message)
  }
  showAccount(document.getElementById('account'), auth)
  const api = new Api(config.apiUrl, auth)
  const library = new Library({ api, config, player: new Player(document.getElementById('player')) })
  const track = (videoId) => library.track(videoId).catch((error) => showNotice(error.message))
  startUploads(document.getElementById('uploader'), {
    api,
    auth,
    maxUploadBytes: config.maxUploadBytes,
    // Creating the upload created the record: list it now.
    onStarted: track,
    onUploaded: (_file, videoId) => track(videoId),
  })
  if (auth.signedIn) {
    await library.load()
  }
}

main().catch((error) => showNotice(error.message))
