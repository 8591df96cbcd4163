/** The page's composition root: its settings, the API client, the library with its player, and the uploader. */
import AwsS3 from '@uppy/aws-s3'
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import './style.css'
import { Api, loadConfig, videoIdFromKey } from './api.js'
import { Library } from './library.js'
import { Player } from './player.js'

const notice = document.getElementById('notice')

function showNotice(message) {
  notice.textContent = message
  notice.hidden = false
}

function askForToken(api, dashboard, library) {
  const form = document.getElementById('token-form')
  form.hidden = false
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    api.token = form.elements.token.value.trim()
    form.hidden = true
    dashboard.setOptions({ disabled: false })
    library.load().catch((error) => showNotice(error.message))
  })
}

async function main() {
  const config = await loadConfig()
  const api = new Api(config.apiUrl, config.token)
  const library = new Library({ api, config, player: new Player(document.getElementById('player')) })
  const uppy = new Uppy({ restrictions: { allowedFileTypes: ['video/*'] } })
    .use(Dashboard, {
      inline: true,
      target: '#uploader',
      height: 240,
      width: '100%',
      disabled: !api.token,
      note: 'Video files only',
      proudlyDisplayPoweredByUppy: false,
    })
    .use(AwsS3, {
      shouldUseMultipart: true,
      // The server makes the key and keeps only the file name of this one.
      generateObjectKey: (file) => file.name,
      signRequest: async (request) => {
        const answer = await api.sign(request)
        // Creating the multipart upload created the record: list it now.
        if (request.method === 'POST' && !request.uploadId && answer.key) {
          library.track(videoIdFromKey(answer.key)).catch((error) => showNotice(error.message))
        }
        return answer
      },
    })
  uppy.on('upload-success', (_file, response) => {
    library.track(videoIdFromKey(response.body.key)).catch((error) => showNotice(error.message))
  })
  if (api.token) {
    await library.load()
  } else {
    askForToken(api, uppy.getPlugin('Dashboard'), library)
  }
}

main().catch((error) => showNotice(error.message))
