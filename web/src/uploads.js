/**
 * The upload panel: Uppy's Dashboard with each S3 request signed by the API,
 * Golden Retriever keeping the files and their multipart uploads across a
 * reload or a closed tab, a warning before leaving mid-upload, and every
 * refusal said in words beside it.
 */
import AwsS3 from '@uppy/aws-s3'
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import GoldenRetriever from '@uppy/golden-retriever'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import VIDEO_TYPES from '../../client/video_types.json'
import { videoIdFromKey } from './api.js'
import { SignInExpired } from './auth.js'

/**
 * The media type a file is uploaded as: by its extension first, as the vod
 * CLI does (browsers misname or do not know many, e.g. `.ts`, `.mts`), else
 * the browser's when it names a video; null for a file that is not a video.
 */
export function videoType(name, type) {
  const dot = name.lastIndexOf('.')
  const known = dot > 0 ? VIDEO_TYPES[name.slice(dot).toLowerCase()] : undefined
  return known || (type?.startsWith('video/') ? type : null)
}

function inWords(bytes) {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB']
  let unit = 0
  while (bytes >= 1000 && unit < units.length - 1) {
    bytes /= 1000
    unit += 1
  }
  return `${Number(bytes.toPrecision(3))} ${units[unit]}`
}

/** Why an upload failed, in words. */
function failure(file, error) {
  if (error instanceof SignInExpired) {
    return `${error.message}, then retry ${file.name}.`
  }
  // No answer at all: fetch() rejects with a TypeError, Uppy's S3 client
  // with code NETWORK.
  const offline = error?.name === 'TypeError' || error?.code === 'NETWORK'
  const reason = offline ? 'the connection failed; retry when you are back online' : error?.message
  return `${file.name} was not uploaded: ${reason || 'unknown error'}`
}

/** Whose uploads Golden Retriever keeps in this browser: they resume only
 * for the same account. */
const KEPT_FOR = 'vod.uploads-of'

/** A file is being sent now (not finished, failed or paused). */
const sending = (file) =>
  file.progress.uploadStarted && !file.progress.uploadComplete && !file.error && !file.isPaused

/**
 * Starts the panel in `section`. `maxUploadBytes` is the server's limit;
 * `onStarted(videoId)` is called when an upload's record is made, and
 * `onUploaded(file, videoId)` when the upload is finished.
 */
export function startUploads(section, { api, auth, maxUploadBytes, onStarted, onUploaded }) {
  const panel = document.createElement('div')
  const message = document.createElement('p')
  message.className = 'upload-error'
  message.setAttribute('role', 'alert')
  message.hidden = true
  section.replaceChildren(panel, message)
  const say = (text) => {
    message.textContent = text
    message.hidden = !text
  }

  const uppy = new Uppy({
    restrictions: {
      allowedFileTypes: ['video/*', ...Object.keys(VIDEO_TYPES)],
      maxFileSize: maxUploadBytes,
    },
    onBeforeFileAdded: (file, files) => {
      if (files[file.id] && !files[file.id].isGhost) {
        return false // Uppy says it is a duplicate.
      }
      const type = videoType(file.name, file.type)
      return type ? { ...file, type } : true
    },
  })
    .use(Dashboard, {
      inline: true,
      target: panel,
      height: 340,
      width: '100%',
      disabled: !auth.signedIn,
      note: maxUploadBytes ? `Video files up to ${inWords(maxUploadBytes)}` : 'Video files',
      proudlyDisplayPoweredByUppy: false,
    })
    .use(AwsS3, {
      // Multipart for every file: only a multipart upload can resume.
      shouldUseMultipart: true,
      // The server makes the key and keeps only the file name of this one.
      generateObjectKey: (file) => file.name,
      signRequest: async (request) => {
        const answer = await api.sign(request)
        if (request.method === 'POST' && !request.uploadId && answer.key) {
          onStarted(videoIdFromKey(answer.key))
        }
        return answer
      },
    })
    .use(GoldenRetriever, {
      // The plugin keeps files of up to 10 MiB by default; keep any file
      // the server takes (the browser's storage quota still applies, and
      // a file it could not keep is asked for again after a reload).
      indexedDB: { maxFileSize: maxUploadBytes ?? Infinity, maxTotalSize: maxUploadBytes ?? Infinity },
    })

  uppy.on('restriction-failed', (file, error) => {
    if (file && !videoType(file.name, file.type)) {
      say(`${file.name} is not a video: pick a video file, such as .mp4, .mov, .mkv or .webm.`)
    } else if (file && maxUploadBytes && file.size > maxUploadBytes) {
      say(`${file.name} is ${inWords(file.size)}; one upload may be at most ${inWords(maxUploadBytes)}.`)
    } else {
      say(error.message)
    }
  })
  uppy.on('upload', () => {
    say('')
    localStorage.setItem(KEPT_FOR, auth.user)
  })
  uppy.on('upload-error', (file, error) => say(failure(file, error)))
  uppy.on('upload-success', (file, response) => {
    onUploaded(file, videoIdFromKey(response.body.key))
  })
  // Files kept from before a reload: their uploads go on where S3 has them
  // up to (ListParts), once their own account is signed in to sign the rest.
  // Another account's are dropped: the API would refuse their upload IDs,
  // and the files are not this user's to see.
  uppy.on('restored', () => {
    if (!uppy.getState().recoveredState) {
      return
    }
    const keptFor = localStorage.getItem(KEPT_FOR)
    if (!auth.signedIn) {
      say('Sign in to finish the uploads you started.')
    } else if (keptFor && keptFor !== auth.user) {
      uppy.clear()
      say('Uploads another account started in this browser were discarded.')
    } else {
      uppy.emit('restore-confirmed')
    }
  })
  auth.onChange(() => uppy.getPlugin('Dashboard').setOptions({ disabled: !auth.signedIn }))

  addEventListener('beforeunload', (event) => {
    if (Object.values(uppy.getState().files).some(sending)) {
      // Browsers show their own words; the upload resumes on return.
      event.preventDefault()
    }
  })
  return uppy
}
