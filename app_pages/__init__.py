"""The Streamlit pages (thin: widgets and layout over explorer/); each file is run by st.navigation in app.py."""
