/**
 * Moving files between the browser and S3 through presigned URLs: the API hands out the URL, the
 * bytes never pass through the API.
 */
import { ApiError } from "./errors";

export interface Progress {
  loaded: number;
  total: number;
}

/**
 * PUT a file to a presigned URL, reporting progress. fetch() cannot report upload progress, which
 * is why this one request uses XMLHttpRequest.
 */
export function uploadFile(
  url: string,
  file: Blob,
  onProgress: (progress: Progress) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", url);
    // The URL was signed for this content type; any other is refused by S3.
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.upload.onprogress = (event) => onProgress({ loaded: event.loaded, total: event.total || file.size });
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) {
        onProgress({ loaded: file.size, total: file.size });
        resolve();
      } else {
        reject(new ApiError(request.status, `The upload was refused (${request.status}): ${s3Message(request.responseText)}`));
      }
    };
    request.onerror = () => reject(new ApiError(0, "The upload failed: check your connection and try again."));
    request.onabort = () => reject(new ApiError(0, "The upload was cancelled."));
    signal?.addEventListener("abort", () => request.abort());
    request.send(file);
  });
}

/** S3 explains a refusal in XML: its <Message>, or the start of the body. */
export function s3Message(body: string): string {
  const match = /<Message>([^<]*)<\/Message>/.exec(body);
  return match ? match[1]! : body.slice(0, 200) || "no reason given";
}

/** The first bytes of an object: enough for a preview without downloading a large file. */
export async function fetchHead(url: string, bytes: number): Promise<{ text: string; complete: boolean }> {
  let response: Response;
  try {
    response = await fetch(url, { headers: { Range: `bytes=0-${bytes - 1}` } });
  } catch {
    throw new ApiError(0, "The file could not be fetched: check your connection and try again.");
  }
  if (!response.ok) {
    throw new ApiError(response.status, `The file could not be fetched (${response.status}).`);
  }
  const text = await response.text();
  // 206 with a Content-Range total larger than what came means the preview is cut short.
  const total = Number(/\/(\d+)$/.exec(response.headers.get("Content-Range") ?? "")?.[1] ?? text.length);
  return { text, complete: response.status === 200 || total <= bytes };
}

export async function fetchJson<T>(url: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch {
    throw new ApiError(0, "The file could not be fetched: check your connection and try again.");
  }
  if (!response.ok) throw new ApiError(response.status, `The file could not be fetched (${response.status}).`);
  return (await response.json()) as T;
}

/** Start the browser's download of a presigned link; S3 names the file (Content-Disposition). */
export function startDownload(url: string): void {
  const link = document.createElement("a");
  link.href = url;
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
}
