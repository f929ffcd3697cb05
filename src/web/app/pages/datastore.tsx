// Placeholder: the page is being built (issue 29).
export function DatastorePage() {
  return (
    <section>
      <h1>Datastore</h1>
    </section>
  );
}
