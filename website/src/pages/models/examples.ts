/** Architectures to start from, sized for the digits every local platform can train on. */
export const EXAMPLE_ARCHITECTURES: Record<string, { label: string; spec: unknown }> = {
  mlp: {
    label: "Small MLP for 8×8 digits",
    spec: {
      input_shape: [64],
      num_classes: 10,
      layers: [
        { type: "Linear", in_features: 64, out_features: 32 },
        { type: "ReLU" },
        { type: "Linear", in_features: 32, out_features: 10 },
      ],
    },
  },
  cnn: {
    label: "Small CNN for 8×8 digits",
    spec: {
      input_shape: [1, 8, 8],
      num_classes: 10,
      layers: [
        { type: "Conv2d", in_channels: 1, out_channels: 16, kernel_size: 3, padding: 1 },
        { type: "ReLU" },
        { type: "MaxPool2d", kernel_size: 2 },
        { type: "Conv2d", in_channels: 16, out_channels: 32, kernel_size: 3, padding: 1 },
        { type: "ReLU" },
        { type: "Flatten" },
        { type: "Linear", in_features: 512, out_features: 64 },
        { type: "ReLU" },
        { type: "Linear", in_features: 64, out_features: 10 },
      ],
    },
  },
};

/** JSON.parse with the line and column of the mistake, which is what a person looks for. */
export function parseJsonWithPosition(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    const message = (error as Error).message;
    const position = /position (\d+)/.exec(message);
    if (!position) return { error: `not valid JSON: ${message}` };
    const before = text.slice(0, Number(position[1]));
    const line = before.split("\n").length;
    const column = before.length - before.lastIndexOf("\n");
    return { error: `not valid JSON at line ${line}, column ${column}: ${message.replace(/ in JSON at position \d+.*$/, "")}` };
  }
}
