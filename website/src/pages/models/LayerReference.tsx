import { layerCatalogue, limitsText } from "../../forms/schema";

const LAYERS = layerCatalogue();

/** The allow-list of layers, read from the API's schema, so it always matches what the API takes. */
export function LayerReference() {
  return (
    <aside aria-labelledby="layers-title" className="layer-reference">
      <h2 id="layers-title">Layers you can use</h2>
      <p className="muted">
        A model is a list of these, applied in order, from <code>input_shape</code> (without the batch axis) to{" "}
        <code>num_classes</code> logits. Nothing else is accepted, and nothing is ever unpickled.
      </p>
      {LAYERS.map((layer) => (
        <details key={layer.type}>
          <summary>
            <code>{layer.type}</code>
          </summary>
          {layer.description && <p>{layer.description}</p>}
          {layer.fields.length === 0 ? (
            <p className="muted">No parameters.</p>
          ) : (
            <dl>
              {layer.fields.map((field) => (
                <div key={field.name}>
                  <dt>
                    <code>{field.name}</code>
                    {field.required ? " (required)" : ""}
                  </dt>
                  <dd>{[field.description, limitsText(field), field.choices?.join(", ")].filter(Boolean).join(" · ") || field.type}</dd>
                </div>
              ))}
            </dl>
          )}
        </details>
      ))}
    </aside>
  );
}
