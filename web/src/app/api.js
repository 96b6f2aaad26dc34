// The server's JSON API (src/cryoplan/server/app.py), as small promise helpers.
//
// Every refusal of the server is {"error": "one line"} with a 4xx status; we
// turn it into an Error carrying that line, so the page can show exactly what
// the command line would have said.

export class ApiError extends Error {}

async function request(method, url, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) {
    init.body = body; // the browser sets the multipart boundary itself
  } else if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (!response.ok) {
    let message = `${method} ${url}: HTTP ${response.status}`;
    try {
      const data = await response.json();
      if (data && data.error) message = data.error;
    } catch {
      // not JSON (a proxy's page, say): keep the status line
    }
    throw new ApiError(message);
  }
  return response;
}

// the server writes standard JSON (a measure with nothing to measure is null)
export const getJson = async (url) => (await request("GET", url)).json();
export const postJson = async (url, body) => (await request("POST", url, body ?? {})).json();
export const putJson = async (url, body) => (await request("PUT", url, body)).json();
export const deleteJson = async (url) => (await request("DELETE", url)).json();
export const getBytes = async (url) => (await request("GET", url)).arrayBuffer();
export const getText = async (url) => (await request("GET", url)).text();

// Follow a job with the server's event stream until it ends. `onUpdate` gets
// every job JSON (state, progress, message, error). Returns {promise, close}:
// the promise gives the final job JSON, or null once close() was called (the
// job itself keeps running on the server: cancel it separately).
export function followJob(jobId, onUpdate) {
  let source;
  let settle;
  const promise = new Promise((resolve, reject) => {
    settle = { resolve, reject };
    source = new EventSource(`/api/jobs/${jobId}/events`);
    source.onmessage = (event) => {
      const job = JSON.parse(event.data);
      onUpdate(job);
      if (["done", "failed", "cancelled"].includes(job.state)) {
        source.close();
        resolve(job);
      }
    };
    // The server ends the stream after the final state, so an error before
    // that is a lost connection. EventSource would silently reconnect forever;
    // we stop and say so instead.
    source.onerror = () => {
      source.close();
      reject(new ApiError(`lost the connection to job ${jobId}`));
    };
  });
  return {
    promise,
    close() {
      source.close();
      settle.resolve(null);
    },
  };
}
